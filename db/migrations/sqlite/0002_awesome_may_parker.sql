-- Hand-edited from drizzle-kit's output: the pair's unique index first, then the old ones dropped
-- (the migration runs in one transaction; existing rows, unique by id, are unique by pair).
CREATE UNIQUE INDEX `transactions_serial_no_transaction_id_unique` ON `transactions` (`serial_no`,`transaction_id`);--> statement-breakpoint
DROP INDEX `transactions_transaction_id_unique`;--> statement-breakpoint
DROP INDEX `transactions_serial_no`;

-- Hand-edited from drizzle-kit's output: one ALTER per table (one rebuild each), and the pair's
-- unique key added in the same statement that drops the old ones, so transactions is never without
-- a unique key. VARCHAR → VARBINARY keeps every row's bytes (utf8mb4 text becomes its UTF-8 bytes);
-- binary comparison only tells apart values the old collation merged, so no existing row collides.
ALTER TABLE `machine_commands` MODIFY COLUMN `message_id` varbinary(64) NOT NULL, MODIFY COLUMN `serial_no` varbinary(64) NOT NULL;--> statement-breakpoint
ALTER TABLE `machine_logs` MODIFY COLUMN `serial_no` varbinary(64) NOT NULL;--> statement-breakpoint
ALTER TABLE `machine_slots` MODIFY COLUMN `serial_no` varbinary(64) NOT NULL;--> statement-breakpoint
ALTER TABLE `machines` MODIFY COLUMN `serial_no` varbinary(64) NOT NULL;--> statement-breakpoint
ALTER TABLE `transactions` MODIFY COLUMN `transaction_id` varbinary(256) NOT NULL, MODIFY COLUMN `serial_no` varbinary(64) NOT NULL, ADD CONSTRAINT `transactions_serial_no_transaction_id_unique` UNIQUE(`serial_no`,`transaction_id`), DROP INDEX `transactions_transaction_id_unique`, DROP INDEX `transactions_serial_no`;

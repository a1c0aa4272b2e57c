CREATE INDEX `machine_logs_received_at` ON `machine_logs` (`received_at`);--> statement-breakpoint
CREATE INDEX `transactions_received_at` ON `transactions` (`received_at`);
CREATE TABLE `machine_commands` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`message_id` text(64) NOT NULL,
	`serial_no` text(64) NOT NULL,
	`command` text(64) NOT NULL,
	`payload` text NOT NULL,
	`status` text(16) NOT NULL,
	`source` text(16) DEFAULT 'api' NOT NULL,
	`detail` text,
	`expires_at` integer NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	`sent_at` integer,
	`acked_at` integer,
	`updated_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `machine_commands_message_id_unique` ON `machine_commands` (`message_id`);--> statement-breakpoint
CREATE INDEX `machine_commands_serial_no_created_at` ON `machine_commands` (`serial_no`,`created_at`);--> statement-breakpoint
CREATE TABLE `machine_logs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`serial_no` text(64) NOT NULL,
	`code` text(64) NOT NULL,
	`level` text(16) NOT NULL,
	`message` text NOT NULL,
	`payload` text NOT NULL,
	`received_at` integer NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `machine_logs_serial_no_received_at` ON `machine_logs` (`serial_no`,`received_at`);--> statement-breakpoint
CREATE TABLE `machine_slots` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`serial_no` text(64) NOT NULL,
	`slot_no` integer NOT NULL,
	`stock` integer DEFAULT 0 NOT NULL,
	`updated_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `machine_slots_serial_no_slot_no_unique` ON `machine_slots` (`serial_no`,`slot_no`);--> statement-breakpoint
CREATE TABLE `machines` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`serial_no` text(64) NOT NULL,
	`name` text(128),
	`registered` integer DEFAULT false NOT NULL,
	`last_heard_at` integer,
	`temperature` real,
	`current_page` integer,
	`last_heartbeat` text,
	`api_token_hash` text(64),
	`token_issued_at` integer,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL,
	`updated_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `machines_serial_no_unique` ON `machines` (`serial_no`);--> statement-breakpoint
CREATE INDEX `machines_last_heard_at` ON `machines` (`last_heard_at`);--> statement-breakpoint
CREATE TABLE `transactions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`transaction_id` text(64) NOT NULL,
	`serial_no` text(64) NOT NULL,
	`slot_no` integer NOT NULL,
	`quantity` integer NOT NULL,
	`amount` numeric NOT NULL,
	`payload` text NOT NULL,
	`received_at` integer NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsec') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `transactions_transaction_id_unique` ON `transactions` (`transaction_id`);--> statement-breakpoint
CREATE INDEX `transactions_serial_no` ON `transactions` (`serial_no`);
CREATE TABLE `machine_commands` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`message_id` varchar(64) NOT NULL,
	`serial_no` varchar(64) NOT NULL,
	`command` varchar(64) NOT NULL,
	`payload` json NOT NULL,
	`status` varchar(16) NOT NULL,
	`source` varchar(16) NOT NULL DEFAULT 'api',
	`detail` json,
	`expires_at` datetime(3) NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`sent_at` datetime(3),
	`acked_at` datetime(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `machine_commands_id` PRIMARY KEY(`id`),
	CONSTRAINT `machine_commands_message_id_unique` UNIQUE(`message_id`)
);
--> statement-breakpoint
CREATE TABLE `machine_logs` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`serial_no` varchar(64) NOT NULL,
	`code` varchar(64) NOT NULL,
	`level` varchar(16) NOT NULL,
	`message` text NOT NULL,
	`payload` json NOT NULL,
	`received_at` datetime(3) NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `machine_logs_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `machine_slots` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`serial_no` varchar(64) NOT NULL,
	`slot_no` int NOT NULL,
	`stock` int NOT NULL DEFAULT 0,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `machine_slots_id` PRIMARY KEY(`id`),
	CONSTRAINT `machine_slots_serial_no_slot_no_unique` UNIQUE(`serial_no`,`slot_no`)
);
--> statement-breakpoint
CREATE TABLE `machines` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`serial_no` varchar(64) NOT NULL,
	`name` varchar(128),
	`registered` boolean NOT NULL DEFAULT false,
	`last_heard_at` datetime(3),
	`temperature` double,
	`current_page` int,
	`last_heartbeat` json,
	`api_token_hash` varchar(64),
	`token_issued_at` datetime(3),
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `machines_id` PRIMARY KEY(`id`),
	CONSTRAINT `machines_serial_no_unique` UNIQUE(`serial_no`)
);
--> statement-breakpoint
CREATE TABLE `transactions` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`transaction_id` varchar(64) NOT NULL,
	`serial_no` varchar(64) NOT NULL,
	`slot_no` int NOT NULL,
	`quantity` int NOT NULL,
	`amount` decimal(12,2) NOT NULL,
	`payload` json NOT NULL,
	`received_at` datetime(3) NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `transactions_id` PRIMARY KEY(`id`),
	CONSTRAINT `transactions_transaction_id_unique` UNIQUE(`transaction_id`)
);
--> statement-breakpoint
CREATE INDEX `machine_commands_serial_no_created_at` ON `machine_commands` (`serial_no`,`created_at`);--> statement-breakpoint
CREATE INDEX `machine_logs_serial_no_received_at` ON `machine_logs` (`serial_no`,`received_at`);--> statement-breakpoint
CREATE INDEX `machines_last_heard_at` ON `machines` (`last_heard_at`);--> statement-breakpoint
CREATE INDEX `transactions_serial_no` ON `transactions` (`serial_no`);
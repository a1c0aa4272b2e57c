/**
 * @module schema
 * The MySQL / MariaDB tables of the contract. Ids are unsigned bigint autoincrement because
 * MariaDB rejects Drizzle's `serial()`. Times are UTC `DATETIME(3)`.
 *
 * Identities (serial_no, transaction_id, message_id) are `VARBINARY`: compared byte for byte, so
 * `M-1` / `m-1`, `pad` / `pad ` and `cafe` / `café` are different keys on MySQL and MariaDB alike
 * (no collation of both is case-, accent- and trailing-space-exact), as they are in SQLite. The
 * store's pool reads them back as UTF-8 text (`mysql_store.ts`).
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  datetime,
  decimal,
  double,
  index,
  int,
  json,
  mysqlTable,
  text,
  uniqueIndex,
  varbinary,
  varchar,
} from "drizzle-orm/mysql-core";

const id = () => bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey();
const time = (name: string) => datetime(name, { mode: "date", fsp: 3 });
const createdAt = () => time("created_at").notNull().default(sql`CURRENT_TIMESTAMP(3)`);
/** A serial_no or message_id: ASCII by the contract's patterns, so bytes = characters. */
const ident = (name: string) => varbinary(name, { length: 64 });
/** A machine's transaction_id: any 64 characters, up to 4 bytes each in UTF-8. */
const transactionIdColumn = () => varbinary("transaction_id", { length: 256 });

export const machines = mysqlTable(
  "machines",
  {
    id: id(),
    serialNo: ident("serial_no").notNull(),
    name: varchar("name", { length: 128 }),
    /** False for a machine first seen on MQTT (unknown serial): recorded, not dropped. */
    registered: boolean("registered").notNull().default(false),
    lastHeardAt: time("last_heard_at"),
    temperature: double("temperature"),
    currentPage: int("current_page"),
    /** The last heartbeat as sent, extra fields included. */
    lastHeartbeat: json("last_heartbeat"),
    apiTokenHash: varchar("api_token_hash", { length: 64 }),
    tokenIssuedAt: time("token_issued_at"),
    createdAt: createdAt(),
    updatedAt: time("updated_at").notNull().default(sql`CURRENT_TIMESTAMP(3)`),
  },
  (
    t,
  ) => [
    uniqueIndex("machines_serial_no_unique").on(t.serialNo),
    index("machines_last_heard_at").on(t.lastHeardAt),
  ],
);

export const machineLogs = mysqlTable("machine_logs", {
  id: id(),
  serialNo: ident("serial_no").notNull(),
  code: varchar("code", { length: 64 }).notNull(),
  level: varchar("level", { length: 16 }).notNull(),
  message: text("message").notNull(),
  payload: json("payload").notNull(),
  receivedAt: time("received_at").notNull(),
  createdAt: createdAt(),
}, (t) => [
  index("machine_logs_serial_no_received_at").on(t.serialNo, t.receivedAt),
  // The console's alerts feed (newest first, fleet-wide) and its "alerts in 24 h" per machine.
  index("machine_logs_received_at").on(t.receivedAt),
]);

export const transactions = mysqlTable("transactions", {
  id: id(),
  transactionId: transactionIdColumn().notNull(),
  serialNo: ident("serial_no").notNull(),
  slotNo: int("slot_no").notNull(),
  quantity: int("quantity").notNull(),
  amount: decimal("amount", { precision: 12, scale: 2 }).notNull(),
  payload: json("payload").notNull(),
  receivedAt: time("received_at").notNull(),
  createdAt: createdAt(),
}, (t) => [
  // A sale is (serial_no, transaction_id): machines number their own sales, so ids repeat across
  // machines. The pair also serves every lookup by serial_no.
  uniqueIndex("transactions_serial_no_transaction_id_unique").on(t.serialNo, t.transactionId),
  // The console's sales today per machine and sales per hour read only the recent rows.
  index("transactions_received_at").on(t.receivedAt),
]);

export const machineSlots = mysqlTable("machine_slots", {
  id: id(),
  serialNo: ident("serial_no").notNull(),
  slotNo: int("slot_no").notNull(),
  /** May go below zero: a sale of stock the system did not know about is recorded, not refused. */
  stock: int("stock").notNull().default(0),
  updatedAt: time("updated_at").notNull().default(sql`CURRENT_TIMESTAMP(3)`),
}, (t) => [uniqueIndex("machine_slots_serial_no_slot_no_unique").on(t.serialNo, t.slotNo)]);

export const machineCommands = mysqlTable("machine_commands", {
  id: id(),
  messageId: ident("message_id").notNull(),
  serialNo: ident("serial_no").notNull(),
  command: varchar("command", { length: 64 }).notNull(),
  payload: json("payload").notNull(),
  /** queued, sent, delivered, succeeded, failed, expired */
  status: varchar("status", { length: 16 }).notNull(),
  source: varchar("source", { length: 16 }).notNull().default("api"),
  detail: json("detail"),
  expiresAt: time("expires_at").notNull(),
  createdAt: createdAt(),
  sentAt: time("sent_at"),
  ackedAt: time("acked_at"),
  updatedAt: time("updated_at").notNull().default(sql`CURRENT_TIMESTAMP(3)`),
}, (t) => [
  uniqueIndex("machine_commands_message_id_unique").on(t.messageId),
  index("machine_commands_serial_no_created_at").on(t.serialNo, t.createdAt),
  // The TTL sweep (downlink/command_sweeper.ts) runs every second: it must not scan the table.
  index("machine_commands_status_expires_at").on(t.status, t.expiresAt),
]);

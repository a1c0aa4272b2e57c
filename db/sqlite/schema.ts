/**
 * @module schema_sqlite
 * The contract's tables for the embedded SQLite store: the same tables, columns and indexes as the
 * MySQL schema (`schema.ts`), in SQLite's types. Ids are integer autoincrement; times are integer
 * milliseconds since the epoch (UTC, like MySQL's `DATETIME(3)`); JSON is text; booleans are 0/1.
 * `store_test.ts` checks that both schemas keep the same tables and columns. Text compares with
 * SQLite's default BINARY collation: identities are exact (case, accents, trailing spaces), like
 * the MySQL schema's `VARBINARY` columns.
 */
import { sql } from "drizzle-orm";
import { index, integer, numeric, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const id = () => integer("id").primaryKey({ autoIncrement: true });
const time = (name: string) => integer(name, { mode: "timestamp_ms" });
/** Now in milliseconds (SQLite ≥ 3.42 has `subsec`). */
const nowMs = sql`(cast(unixepoch('subsec') * 1000 as integer))`;
const createdAt = () => time("created_at").notNull().default(nowMs);
const varchar = (name: string, length: number) => text(name, { length });
const json = (name: string) => text(name, { mode: "json" });

export const machines = sqliteTable(
  "machines",
  {
    id: id(),
    serialNo: varchar("serial_no", 64).notNull(),
    name: varchar("name", 128),
    /** False for a machine first seen on MQTT (unknown serial): recorded, not dropped. */
    registered: integer("registered", { mode: "boolean" }).notNull().default(false),
    lastHeardAt: time("last_heard_at"),
    temperature: real("temperature"),
    currentPage: integer("current_page"),
    /** The last heartbeat as sent, extra fields included. */
    lastHeartbeat: json("last_heartbeat"),
    apiTokenHash: varchar("api_token_hash", 64),
    tokenIssuedAt: time("token_issued_at"),
    createdAt: createdAt(),
    updatedAt: time("updated_at").notNull().default(nowMs),
  },
  (t) => [
    uniqueIndex("machines_serial_no_unique").on(t.serialNo),
    index("machines_last_heard_at").on(t.lastHeardAt),
  ],
);

export const machineLogs = sqliteTable("machine_logs", {
  id: id(),
  serialNo: varchar("serial_no", 64).notNull(),
  code: varchar("code", 64).notNull(),
  level: varchar("level", 16).notNull(),
  message: text("message").notNull(),
  payload: json("payload").notNull(),
  receivedAt: time("received_at").notNull(),
  createdAt: createdAt(),
}, (t) => [
  index("machine_logs_serial_no_received_at").on(t.serialNo, t.receivedAt),
  // The console's alerts feed (newest first, fleet-wide) and its "alerts in 24 h" per machine.
  index("machine_logs_received_at").on(t.receivedAt),
]);

export const transactions = sqliteTable("transactions", {
  id: id(),
  transactionId: varchar("transaction_id", 64).notNull(),
  serialNo: varchar("serial_no", 64).notNull(),
  slotNo: integer("slot_no").notNull(),
  quantity: integer("quantity").notNull(),
  /** NUMERIC affinity: what SQLite has closest to MySQL's DECIMAL(12,2). */
  amount: numeric("amount", { mode: "number" }).notNull(),
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

export const machineSlots = sqliteTable("machine_slots", {
  id: id(),
  serialNo: varchar("serial_no", 64).notNull(),
  slotNo: integer("slot_no").notNull(),
  /** May go below zero: a sale of stock the system did not know about is recorded, not refused. */
  stock: integer("stock").notNull().default(0),
  updatedAt: time("updated_at").notNull().default(nowMs),
}, (t) => [uniqueIndex("machine_slots_serial_no_slot_no_unique").on(t.serialNo, t.slotNo)]);

export const machineCommands = sqliteTable("machine_commands", {
  id: id(),
  messageId: varchar("message_id", 64).notNull(),
  serialNo: varchar("serial_no", 64).notNull(),
  command: varchar("command", 64).notNull(),
  payload: json("payload").notNull(),
  /** queued, sent, delivered, succeeded, failed, expired */
  status: varchar("status", 16).notNull(),
  source: varchar("source", 16).notNull().default("api"),
  detail: json("detail"),
  expiresAt: time("expires_at").notNull(),
  createdAt: createdAt(),
  sentAt: time("sent_at"),
  ackedAt: time("acked_at"),
  updatedAt: time("updated_at").notNull().default(nowMs),
}, (t) => [
  uniqueIndex("machine_commands_message_id_unique").on(t.messageId),
  index("machine_commands_serial_no_created_at").on(t.serialNo, t.createdAt),
  // The TTL sweep (downlink/command_sweeper.ts) runs every second: it must not scan the table.
  index("machine_commands_status_expires_at").on(t.status, t.expiresAt),
]);

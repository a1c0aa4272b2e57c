/**
 * @module mysql_store
 * {@link Store} on MySQL 8 / MariaDB 10.11 through Drizzle and a mysql2 pool.
 */
import { and, count, desc, eq, gte, isNull, lt, or, sql } from "drizzle-orm";
import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import type { MigrationMeta } from "drizzle-orm/migrator";
import { migrate } from "drizzle-orm/mysql2/migrator";
import mysql from "mysql2/promise";
import { FleetViews } from "../fleet_views.ts";
import { getLogger } from "@logtape/logtape";
import { embeddedMigrations } from "../embedded_migrations.ts";
import { binaryAsText } from "./binary_as_text.ts";
import { toSummary } from "../machine_summary.ts";
import { emptySlotSales } from "../empty_slot_sales.ts";
import { MysqlCommands } from "./mysql_commands.ts";
import { parseJson } from "../parse_json.ts";
import * as schema from "./schema.ts";
import type { CommandAck, CommandAckOutcome, CommandRecord, NewCommand } from "../store.ts";
import { machineLogs, machines, machineSlots } from "./schema.ts";
import {
  type HeartbeatRecord,
  lastPerSlot,
  latestPerMachine,
  type MachineDetail,
  type MachineLogRecord,
  type MachineQuery,
  type MachineSummary,
  type SaleKey,
  saleKey,
  type SlotStock,
  type Store,
  type TransactionOutcome,
  type TransactionRecord,
} from "../store.ts";

const log = getLogger(["gateway", "db"]);

const DEADLOCK_CODES = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]);
/** A concurrent batch committed the same sale first: running again sees it as a duplicate. */
const TRANSACTION_RETRY_CODES = new Set([...DEADLOCK_CODES, "ER_DUP_ENTRY"]);
// The batch writes are plain SQL with placeholders: Drizzle's builder spends ~0.1-0.2 ms of CPU
// per row on a 1,000-row INSERT (more than MariaDB takes to run it), which capped the worker.
// They run under READ COMMITTED: no gap locks, so two workers inserting neighbouring keys
// (transaction ids grow with time) do not deadlock; the unique indexes keep the effect exactly once.
const HEARTBEAT_COLUMNS = ["serial_no", "last_heard_at", "temperature", "current_page", "last_heartbeat"];
const LOG_COLUMNS = ["serial_no", "code", "level", "message", "payload", "received_at"];
const TRANSACTION_COLUMNS = [
  "transaction_id",
  "serial_no",
  "slot_no",
  "quantity",
  "amount",
  "payload",
  "received_at",
];
const SLOT_COLUMNS = ["serial_no", "slot_no", "stock"];

const keyOf = (r: SaleKey): SaleKey => ({ serialNo: r.serialNo, transactionId: r.transactionId });

/** `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)` for `rows` rows. */
function insertSql(table: string, columns: readonly string[], rows: number): string {
  const row = `(${columns.map(() => "?").join(", ")})`;
  return `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${Array(rows).fill(row).join(", ")}`;
}

/** Adds the machines not known yet (unregistered), without locking the ones that exist. */
async function ensureMachines(conn: mysql.PoolConnection, serials: string[]): Promise<void> {
  const unique = [...new Set(serials)].sort();
  // Read first: updating rows that exist would lock them against the heartbeat upserts.
  const [known] = await conn.query<mysql.RowDataPacket[]>(
    "SELECT serial_no FROM machines WHERE serial_no IN (?)",
    [unique],
  );
  const have = new Set(known.map((r) => r.serial_no as string));
  const missing = unique.filter((s) => !have.has(s));
  if (missing.length > 0) {
    await conn.query(
      `INSERT IGNORE INTO machines (serial_no) VALUES ${missing.map(() => "(?)").join(", ")}`,
      missing,
    );
  }
}

/** Each pooled connection's prepared-statement cache (see the pool's options). */
const PREPARED_STATEMENTS = 16;

export interface MysqlStoreOptions {
  url: string;
  /** Read the migrations from this drizzle-kit folder instead of the embedded list. */
  migrationsFolder?: string;
  /** Defaults to the committed migrations embedded in the program (db/migrations/embedded.ts). */
  migrations?: readonly MigrationMeta[];
  connectionLimit?: number;
}

export class MysqlStore implements Store {
  readonly dialect = "mysql" as const;
  readonly pool: mysql.Pool;
  readonly db: MySql2Database<typeof schema>;
  readonly views: FleetViews;
  readonly #url: string;
  readonly #migrationsFolder?: string;
  readonly #migrations?: readonly MigrationMeta[];
  readonly #commands: MysqlCommands;
  #closed?: Promise<void>;

  constructor(options: MysqlStoreOptions) {
    this.#url = options.url;
    this.pool = mysql.createPool({
      uri: options.url,
      connectionLimit: options.connectionLimit ?? 10,
      timezone: "Z",
      decimalNumbers: true,
      enableKeepAlive: true,
      connectTimeout: 5000,
      typeCast: binaryAsText,
      // The store sends text queries only (Drizzle's mysql2 session calls query(), not execute()),
      // so the prepared-statement cache stays empty; mysql2 still allocates its LRU's four arrays
      // at their size, 16,000 entries by default: 512 KB of heap per connection, 5 MB per pool.
      maxPreparedStatements: PREPARED_STATEMENTS,
    });
    // Every transaction here runs under READ COMMITTED (see the batch writes above): set once per
    // connection rather than by a statement before each transaction, a round trip per batch.
    this.pool.pool.on("connection", (conn) => {
      // A connection that cannot take it is not used: the pool then opens another.
      conn.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", (error) => {
        if (error) conn.destroy();
      });
    });
    this.db = drizzle(this.pool, { schema, mode: "default" });
    this.views = new FleetViews("mysql", async (text, params) => {
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>(text, params);
      return rows;
    });
    this.#migrationsFolder = options.migrationsFolder;
    this.#migrations = options.migrations;
    this.#commands = new MysqlCommands(
      this.db,
      this.pool,
      (fn) => this.#withDeadlockRetry(() => this.#transaction(fn)),
    );
  }

  /** Creates the database when it is missing (and the account may), then applies the migrations. */
  async migrate(): Promise<void> {
    await this.#ensureDatabase();
    if (this.#migrationsFolder) return await migrate(this.db, { migrationsFolder: this.#migrationsFolder });
    // What drizzle's folder migrator does, minus the disk: a bundle or binary has no migrations folder.
    const { dialect, session } = this.db as unknown as {
      dialect: { migrate(m: MigrationMeta[], s: unknown, c: { migrationsFolder: string }): Promise<void> };
      session: unknown;
    };
    const migrations = [...(this.#migrations ?? embeddedMigrations("mysql"))];
    await dialect.migrate(migrations, session, { migrationsFolder: "" });
  }

  /**
   * A fresh install names a database nobody created yet: `CREATE DATABASE IF NOT EXISTS` it when
   * the account may, else say in one line what to do (an error with no connection code: not retried).
   */
  async #ensureDatabase(): Promise<void> {
    let code: string | undefined;
    try {
      (await this.pool.getConnection()).release();
      return;
    } catch (error) {
      code = (error as { code?: string }).code;
      // An account without rights on a database is not told whether it exists (1044, not 1049).
      if (code !== "ER_BAD_DB_ERROR" && code !== "ER_DBACCESS_DENIED_ERROR") throw error;
    }
    const url = new URL(this.#url);
    const name = decodeURIComponent(url.pathname.slice(1));
    url.pathname = "/";
    const conn = await mysql.createConnection({ uri: url.toString(), connectTimeout: 5000 });
    try {
      await conn.query(`CREATE DATABASE IF NOT EXISTS ${mysql.escapeId(name)}`);
      log.info("Created the database {name} on {host}", { name, host: url.host });
    } catch (error) {
      const user = decodeURIComponent(url.username) || "(no user)";
      const what = code === "ER_BAD_DB_ERROR"
        ? `database ${name} does not exist`
        : `user ${user} may not use database ${name} (or it does not exist)`;
      throw new Error(
        `${what} and user ${user} may not create it (${(error as Error).message.split("\n")[0]})`,
        { cause: error },
      );
    } finally {
      await conn.end().catch(() => conn.destroy());
    }
  }

  async ping(): Promise<void> {
    await this.db.execute(sql`SELECT 1`);
  }

  recordHeartbeats(rows: readonly HeartbeatRecord[]): Promise<void> {
    // One row per machine, in a fixed order, so concurrent batches lock rows in the same order.
    const latest = latestPerMachine(rows).sort((a, b) => a.serialNo.localeCompare(b.serialNo));
    if (latest.length === 0) return Promise.resolve();
    const params: unknown[] = [];
    for (const r of latest) {
      params.push(r.serialNo, r.receivedAt, r.temperature, r.currentPage, JSON.stringify(r.payload));
    }
    const newer = "(last_heard_at IS NULL OR VALUES(last_heard_at) >= last_heard_at)";
    // MySQL applies these left to right: last_heard_at must come last so `newer` sees the old value.
    const text = `${insertSql("machines", HEARTBEAT_COLUMNS, latest.length)}
      ON DUPLICATE KEY UPDATE
        temperature = IF(${newer}, COALESCE(VALUES(temperature), temperature), temperature),
        current_page = IF(${newer}, COALESCE(VALUES(current_page), current_page), current_page),
        last_heartbeat = IF(${newer}, VALUES(last_heartbeat), last_heartbeat),
        updated_at = CURRENT_TIMESTAMP(3),
        last_heard_at = GREATEST(COALESCE(last_heard_at, VALUES(last_heard_at)), VALUES(last_heard_at))`;
    return this.#withDeadlockRetry(async () => {
      await this.pool.query(text, params);
    });
  }

  recordMachineLogs(rows: readonly MachineLogRecord[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const params: unknown[] = [];
    for (const r of rows) {
      params.push(r.serialNo, r.code, r.level, r.message, JSON.stringify(r.payload), r.receivedAt);
    }
    return this.#withDeadlockRetry(() =>
      this.#transaction(async (conn) => {
        await ensureMachines(conn, rows.map((r) => r.serialNo));
        await conn.query(insertSql("machine_logs", LOG_COLUMNS, rows.length), params);
      })
    );
  }

  recordTransactions(rows: readonly TransactionRecord[]): Promise<TransactionOutcome> {
    if (rows.length === 0) return Promise.resolve({ applied: [], duplicates: [] });
    return this.#withDeadlockRetry(() =>
      this.#transaction(async (conn) => {
        const duplicates: SaleKey[] = [];
        const unique = new Map<string, TransactionRecord>();
        for (const r of rows) {
          const key = saleKey(r);
          if (unique.has(key)) duplicates.push(keyOf(r));
          else unique.set(key, r);
        }
        // A plain read: a sale committed by another batch is final; one still in flight makes our
        // INSERT fail on the unique key, and the retry then finds it here. A row-constructor IN is a
        // point lookup per pair on the (serial_no, transaction_id) key (two plain IN lists would
        // read every sale of the batch's machines with any of its ids: 10x slower).
        const pairs = [...unique.values()].flatMap((r) => [r.serialNo, r.transactionId]);
        const [existing] = await conn.query<mysql.RowDataPacket[]>(
          `SELECT serial_no, transaction_id FROM transactions WHERE (serial_no, transaction_id) IN (${
            Array(unique.size).fill("(?, ?)").join(", ")
          })`,
          pairs,
        );
        for (const { serial_no: serialNo, transaction_id: transactionId } of existing) {
          if (unique.delete(saleKey({ serialNo, transactionId }))) {
            duplicates.push({ serialNo, transactionId });
          }
        }
        const fresh = [...unique.values()];
        if (fresh.length > 0) {
          await ensureMachines(conn, fresh.map((r) => r.serialNo));
          const params: unknown[] = [];
          for (const r of fresh) {
            params.push(
              r.transactionId,
              r.serialNo,
              r.slotNo,
              r.quantity,
              String(r.amount),
              JSON.stringify(r.payload),
              r.receivedAt,
            );
          }
          await conn.query(insertSql("transactions", TRANSACTION_COLUMNS, fresh.length), params);
          const sold = new Map<string, { serialNo: string; slotNo: number; quantity: number }>();
          for (const r of fresh) {
            const key = `${r.serialNo}\u0000${r.slotNo}`;
            const slot = sold.get(key) ?? { serialNo: r.serialNo, slotNo: r.slotNo, quantity: 0 };
            slot.quantity += r.quantity;
            sold.set(key, slot);
          }
          const slots = [...sold.values()].sort((a, b) =>
            a.serialNo.localeCompare(b.serialNo) || a.slotNo - b.slotNo
          );
          const [known] = await conn.query<mysql.RowDataPacket[]>(
            `SELECT serial_no, slot_no, stock FROM machine_slots WHERE (serial_no, slot_no) IN (${
              slots.map(() => "(?, ?)").join(", ")
            })`,
            slots.flatMap((s) => [s.serialNo, s.slotNo]),
          );
          const emptySlots = emptySlotSales(
            fresh,
            known.map((r) => ({ serialNo: r.serial_no, slotNo: r.slot_no, stock: r.stock })),
          );
          const slotParams: unknown[] = [];
          for (const s of slots) slotParams.push(s.serialNo, s.slotNo, -s.quantity);
          await conn.query(
            `${insertSql("machine_slots", SLOT_COLUMNS, slots.length)}
              ON DUPLICATE KEY UPDATE stock = stock + VALUES(stock), updated_at = CURRENT_TIMESTAMP(3)`,
            slotParams,
          );
          return { applied: fresh.map(keyOf), duplicates, emptySlots };
        }
        return { applied: [], duplicates };
      }), TRANSACTION_RETRY_CODES);
  }

  setSlotStock(serialNo: string, slots: readonly SlotStock[]): Promise<SlotStock[] | null> {
    const rows = lastPerSlot(slots);
    return this.#withDeadlockRetry(() =>
      this.#transaction(async (conn) => {
        const [found] = await conn.query<mysql.RowDataPacket[]>(
          "SELECT 1 FROM machines WHERE serial_no = ?",
          [serialNo],
        );
        if (found.length === 0) return null;
        if (rows.length > 0) {
          // By slot_no, the order the sales' decrements lock them in (recordTransactions): no deadlock.
          await conn.query(
            `${insertSql("machine_slots", SLOT_COLUMNS, rows.length)}
              ON DUPLICATE KEY UPDATE stock = VALUES(stock), updated_at = CURRENT_TIMESTAMP(3)`,
            rows.flatMap((r) => [serialNo, r.slotNo, r.stock]),
          );
        }
        const [after] = await conn.query<mysql.RowDataPacket[]>(
          "SELECT slot_no, stock FROM machine_slots WHERE serial_no = ? ORDER BY slot_no",
          [serialNo],
        );
        return after.map((r) => ({ slotNo: r.slot_no as number, stock: r.stock as number }));
      })
    );
  }

  async listMachines(query: MachineQuery): Promise<{ items: MachineSummary[]; total: number }> {
    const since = query.onlineSince;
    const where = query.online === undefined || !since
      ? undefined
      : query.online
      ? gte(machines.lastHeardAt, since)
      : or(isNull(machines.lastHeardAt), lt(machines.lastHeardAt, since));
    const [rows, [{ total } = { total: 0 }]] = await Promise.all([
      this.db.select().from(machines).where(where).orderBy(machines.serialNo).limit(query.limit)
        .offset(query.offset),
      this.db.select({ total: count() }).from(machines).where(where),
    ]);
    return { items: rows.map(toSummary), total };
  }

  async getMachine(serialNo: string): Promise<MachineDetail | null> {
    const [row] = await this.db.select().from(machines).where(eq(machines.serialNo, serialNo)).limit(1);
    if (!row) return null;
    const [slots, errors] = await Promise.all([
      this.db.select({ slotNo: machineSlots.slotNo, stock: machineSlots.stock }).from(machineSlots)
        .where(eq(machineSlots.serialNo, serialNo)).orderBy(machineSlots.slotNo),
      this.db.select({
        code: machineLogs.code,
        level: machineLogs.level,
        message: machineLogs.message,
        receivedAt: machineLogs.receivedAt,
      }).from(machineLogs).where(and(eq(machineLogs.serialNo, serialNo)))
        .orderBy(desc(machineLogs.receivedAt), desc(machineLogs.id)).limit(20),
    ]);
    return {
      ...toSummary(row),
      lastHeartbeat: parseJson<Record<string, unknown>>(row.lastHeartbeat),
      slots,
      recentErrors: errors,
    };
  }

  // Downlink commands and machine tokens: the SQL is in mysql_commands.ts.
  machineExists(serialNo: string): Promise<boolean> {
    return this.#commands.machineExists(serialNo);
  }

  setMachineToken(
    serialNo: string,
    tokenHash: string | null,
    at: Date,
    publish?: (tokenHash: string | null) => Promise<void>,
  ): Promise<boolean> {
    return this.#commands.setMachineToken(serialNo, tokenHash, at, publish);
  }

  withMachineTokenHash<T>(serialNo: string, fn: (tokenHash: string | null) => Promise<T>): Promise<T> {
    return this.#commands.withMachineTokenHash(serialNo, fn);
  }

  getMachineTokenHash(serialNo: string): Promise<string | null> {
    return this.#commands.getMachineTokenHash(serialNo);
  }

  createCommand(command: NewCommand): Promise<{ command: CommandRecord; created: boolean }> {
    return this.#commands.createCommand(command);
  }

  getCommand(messageId: string): Promise<CommandRecord | null> {
    return this.#commands.getCommand(messageId);
  }

  listCommands(serialNo: string, limit: number): Promise<CommandRecord[]> {
    return this.#commands.listCommands(serialNo, limit);
  }

  createCommands(
    commands: readonly NewCommand[],
    options?: { fresh?: boolean },
  ): Promise<{ command: CommandRecord; created: boolean }[]> {
    return this.#commands.createCommands(commands, options);
  }

  markCommandsSent(messageIds: readonly string[], at: Date): Promise<void> {
    return this.#commands.markCommandsSent(messageIds, at);
  }

  finishQueuedCommand(
    messageId: string,
    status: "expired" | "failed",
    at: Date,
    detail?: Record<string, unknown>,
  ): Promise<boolean> {
    return this.#commands.finishQueuedCommand(messageId, status, at, detail);
  }

  expireCommands(at: Date): Promise<number> {
    return this.#commands.expireCommands(at);
  }

  recordCommandAcks(acks: readonly CommandAck[]): Promise<CommandAckOutcome[]> {
    return this.#commands.recordCommandAcks(acks);
  }

  close(): Promise<void> {
    this.#closed ??= this.pool.end().catch(() => {});
    return this.#closed;
  }

  /** Runs `fn` in one READ COMMITTED transaction on one pooled connection. */
  async #transaction<T>(fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.pool.getConnection();
    try {
      await conn.beginTransaction();
      const result = await fn(conn);
      await conn.commit();
      return result;
    } catch (error) {
      await conn.rollback().catch(() => {});
      throw error;
    } finally {
      conn.release();
    }
  }

  async #withDeadlockRetry<T>(fn: () => Promise<T>, codes = DEADLOCK_CODES, tries = 5): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await fn();
      } catch (error) {
        const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ??
          (error as { code?: string }).code;
        if (attempt >= tries || !code || !codes.has(code)) throw error;
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
      }
    }
  }
}

/**
 * @module sqlite_store
 * {@link Store} on a SQLite file through Drizzle (`sqlite-proxy` onto a `node:sqlite` `DatabaseSync`,
 * no native addon): the embedded default when `DATABASE_URL` is unset. Same meaning as the MySQL
 * store, method by method.
 *
 * A `DatabaseSync` runs each statement synchronously, but Drizzle's transaction is a `begin` …
 * `commit` spread over awaits, so two calls could interleave on the one connection. Every method
 * therefore runs under one in-process lock; SQLite has a single writer anyway. Other processes on
 * the same file wait on SQLite's lock (`busy_timeout`), and write transactions begin IMMEDIATE.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { and, count, desc, eq, gte, isNull, lt, or, sql } from "drizzle-orm";
import { type MigrationMeta, readMigrationFiles } from "drizzle-orm/migrator";
import { drizzle, type SqliteRemoteDatabase } from "drizzle-orm/sqlite-proxy";
import { embeddedMigrations } from "../embedded_migrations.ts";
import { toSummary } from "../machine_summary.ts";
import { emptySlotSales } from "../empty_slot_sales.ts";
import { rowChunks as chunks } from "./row_chunks.ts";
import { FleetViews } from "../fleet_views.ts";
import * as schema from "./schema.ts";
import { machineLogs, machines, machineSlots, transactions } from "./schema.ts";
import { SqliteCommands } from "./sqlite_commands.ts";
import {
  type CommandAck,
  type CommandAckOutcome,
  type CommandRecord,
  type HeartbeatRecord,
  lastPerSlot,
  latestPerMachine,
  type MachineDetail,
  type MachineLogRecord,
  type MachineQuery,
  type MachineSummary,
  type NewCommand,
  type SaleKey,
  saleKey,
  type SlotStock,
  type Store,
  type TransactionOutcome,
  type TransactionRecord,
} from "../store.ts";

const MIGRATIONS_TABLE = "__drizzle_migrations";
const keyOf = (r: SaleKey): SaleKey => ({ serialNo: r.serialNo, transactionId: r.transactionId });
const STATEMENT_CACHE = 256;

export type SqliteDb = SqliteRemoteDatabase<typeof schema>;

export interface SqliteStoreOptions {
  /** The database file (its directory is created), or `:memory:`. */
  path: string;
  /** Read the migrations from this drizzle-kit folder instead of the embedded list. */
  migrationsFolder?: string;
  /** Defaults to the committed migrations embedded in the program (db/migrations/embedded.ts). */
  migrations?: readonly MigrationMeta[];
  busyTimeoutMs?: number;
}

/** What node:sqlite can bind: Drizzle already turned dates, JSON and booleans into these. */
function bindable(value: unknown): SQLInputValue {
  if (value === undefined) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Date) return value.getTime();
  return value as SQLInputValue;
}

export class SqliteStore implements Store {
  readonly dialect = "sqlite" as const;
  readonly db: SqliteDb;
  readonly views: FleetViews;
  readonly #sqlite: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #options: SqliteStoreOptions;
  readonly #commands: SqliteCommands;
  #lock: Promise<unknown> = Promise.resolve();
  #closed?: Promise<void>;

  constructor(options: SqliteStoreOptions) {
    this.#options = options;
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    const db = new DatabaseSync(options.path);
    try {
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.exec("PRAGMA journal_mode = WAL");
      // NORMAL is durable across process crashes in WAL mode; only a power loss may lose the last commits.
      db.exec("PRAGMA synchronous = NORMAL");
    } catch (error) {
      db.close();
      throw new Error(`Cannot open the database ${options.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.#sqlite = db;
    this.db = drizzle((text, params, method) => Promise.resolve(this.#query(text, params, method)), {
      schema,
    });
    this.#commands = new SqliteCommands(this.db);
    // Statements of their own (objects, not the arrays Drizzle's cached ones return), run in turn.
    this.views = new FleetViews("sqlite", (text, params) =>
      this.#exclusive(() =>
        Promise.resolve(
          this.#sqlite.prepare(text).all(...params.map(bindable)) as Record<string, unknown>[],
        )
      ));
  }

  migrate(): Promise<void> {
    return this.#exclusive(() => {
      const migrations = this.#options.migrationsFolder
        ? readMigrationFiles({ migrationsFolder: this.#options.migrationsFolder })
        : [...(this.#options.migrations ?? embeddedMigrations("sqlite"))];
      const db = this.#sqlite;
      // The table drizzle's SQLite migrators keep, so drizzle-kit and this code agree on what ran.
      db.exec(`CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}" (
        id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
      db.exec("BEGIN IMMEDIATE");
      try {
        const last = db.prepare(
          `SELECT created_at FROM "${MIGRATIONS_TABLE}" ORDER BY created_at DESC LIMIT 1`,
        ).get() as { created_at: number | string } | undefined;
        const record = db.prepare(`INSERT INTO "${MIGRATIONS_TABLE}" (hash, created_at) VALUES (?, ?)`);
        for (const migration of migrations) {
          if (last && Number(last.created_at) >= migration.folderMillis) continue;
          for (const statement of migration.sql) {
            if (statement.trim()) db.exec(statement);
          }
          record.run(migration.hash, migration.folderMillis);
        }
        db.exec("COMMIT");
      } catch (error) {
        db.exec("ROLLBACK");
        throw new Error(`Cannot migrate the database ${this.#options.path}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      return Promise.resolve();
    });
  }

  ping(): Promise<void> {
    return this.#exclusive(async () => {
      await this.db.run(sql`SELECT 1`);
    });
  }

  recordHeartbeats(rows: readonly HeartbeatRecord[]): Promise<void> {
    const latest = latestPerMachine(rows).sort((a, b) => a.serialNo.localeCompare(b.serialNo));
    if (latest.length === 0) return Promise.resolve();
    // SQLite evaluates every SET expression on the old row, so the order of the columns is free.
    const newer = sql`(${machines.lastHeardAt} IS NULL OR excluded.last_heard_at >= ${machines.lastHeardAt})`;
    return this.#exclusive(() =>
      this.db.transaction(async (tx) => {
        for (const part of chunks(latest)) {
          await tx.insert(machines).values(part.map((r) => ({
            serialNo: r.serialNo,
            lastHeardAt: r.receivedAt,
            temperature: r.temperature,
            currentPage: r.currentPage,
            lastHeartbeat: r.payload,
          }))).onConflictDoUpdate({
            target: machines.serialNo,
            set: {
              temperature:
                sql`CASE WHEN ${newer} THEN COALESCE(excluded.temperature, ${machines.temperature}) ELSE ${machines.temperature} END`,
              currentPage:
                sql`CASE WHEN ${newer} THEN COALESCE(excluded.current_page, ${machines.currentPage}) ELSE ${machines.currentPage} END`,
              lastHeartbeat:
                sql`CASE WHEN ${newer} THEN excluded.last_heartbeat ELSE ${machines.lastHeartbeat} END`,
              updatedAt: sql`(cast(unixepoch('subsec') * 1000 as integer))`,
              lastHeardAt:
                sql`MAX(COALESCE(${machines.lastHeardAt}, excluded.last_heard_at), excluded.last_heard_at)`,
            },
          });
        }
      }, { behavior: "immediate" })
    );
  }

  recordMachineLogs(rows: readonly MachineLogRecord[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.#exclusive(() =>
      this.db.transaction(async (tx) => {
        await this.#ensureMachines(tx, rows.map((r) => r.serialNo));
        for (const part of chunks(rows)) {
          await tx.insert(machineLogs).values(part.map((r) => ({
            serialNo: r.serialNo,
            code: r.code,
            level: r.level,
            message: r.message,
            payload: r.payload,
            receivedAt: r.receivedAt,
          })));
        }
      }, { behavior: "immediate" })
    );
  }

  recordTransactions(rows: readonly TransactionRecord[]): Promise<TransactionOutcome> {
    if (rows.length === 0) return Promise.resolve({ applied: [], duplicates: [] });
    return this.#exclusive(() =>
      this.db.transaction(async (tx) => {
        const duplicates: SaleKey[] = [];
        const unique = new Map<string, TransactionRecord>();
        for (const r of rows) {
          const key = saleKey(r);
          if (unique.has(key)) duplicates.push(keyOf(r));
          else unique.set(key, r);
        }
        // A row-value IN: one lookup per pair on the (serial_no, transaction_id) index.
        for (const part of chunks([...unique.values()])) {
          const pairs = sql.join(part.map((r) => sql`(${r.serialNo}, ${r.transactionId})`), sql`, `);
          const existing = await tx.select({
            serialNo: transactions.serialNo,
            transactionId: transactions.transactionId,
          }).from(transactions)
            .where(sql`(${transactions.serialNo}, ${transactions.transactionId}) IN (VALUES ${pairs})`);
          for (const found of existing) {
            if (unique.delete(saleKey(found))) duplicates.push(found);
          }
        }
        const fresh = [...unique.values()];
        if (fresh.length > 0) {
          await this.#ensureMachines(tx, fresh.map((r) => r.serialNo));
          for (const part of chunks(fresh)) {
            await tx.insert(transactions).values(part.map((r) => ({
              transactionId: r.transactionId,
              serialNo: r.serialNo,
              slotNo: r.slotNo,
              quantity: r.quantity,
              amount: r.amount,
              payload: r.payload,
              receivedAt: r.receivedAt,
            })));
          }
          const sold = new Map<string, { serialNo: string; slotNo: number; quantity: number }>();
          for (const r of fresh) {
            const key = `${r.serialNo}\u0000${r.slotNo}`;
            const slot = sold.get(key) ?? { serialNo: r.serialNo, slotNo: r.slotNo, quantity: 0 };
            slot.quantity += r.quantity;
            sold.set(key, slot);
          }
          // One statement text for any number of slots (SQLite keeps each prepared text in memory).
          const pairs = JSON.stringify([...sold.values()].map((s) => [s.serialNo, s.slotNo]));
          // The proxy driver gives raw rows as arrays of values.
          const rows = await tx.all<[string, number, number]>(
            sql`SELECT serial_no, slot_no, stock FROM machine_slots
              WHERE (serial_no, slot_no) IN (SELECT value ->> 0, value ->> 1 FROM json_each(${pairs}))`,
          );
          const known = rows.map(([serialNo, slotNo, stock]) => ({ serialNo, slotNo, stock }));
          const emptySlots = emptySlotSales(fresh, known);
          for (const part of chunks([...sold.values()])) {
            await tx.insert(machineSlots)
              .values(part.map((s) => ({ serialNo: s.serialNo, slotNo: s.slotNo, stock: -s.quantity })))
              .onConflictDoUpdate({
                target: [machineSlots.serialNo, machineSlots.slotNo],
                set: {
                  stock: sql`${machineSlots.stock} + excluded.stock`,
                  updatedAt: sql`(cast(unixepoch('subsec') * 1000 as integer))`,
                },
              });
          }
          return { applied: fresh.map(keyOf), duplicates, emptySlots };
        }
        return { applied: [], duplicates };
      }, { behavior: "immediate" })
    );
  }

  setSlotStock(serialNo: string, slots: readonly SlotStock[]): Promise<SlotStock[] | null> {
    const rows = lastPerSlot(slots);
    return this.#exclusive(() =>
      this.db.transaction(async (tx) => {
        const [found] = await tx.select({ serialNo: machines.serialNo }).from(machines)
          .where(eq(machines.serialNo, serialNo)).limit(1);
        if (!found) return null;
        for (const part of chunks(rows)) {
          await tx.insert(machineSlots)
            .values(part.map((r) => ({ serialNo, slotNo: r.slotNo, stock: r.stock })))
            .onConflictDoUpdate({
              target: [machineSlots.serialNo, machineSlots.slotNo],
              set: {
                stock: sql`excluded.stock`,
                updatedAt: sql`(cast(unixepoch('subsec') * 1000 as integer))`,
              },
            });
        }
        return await tx.select({ slotNo: machineSlots.slotNo, stock: machineSlots.stock })
          .from(machineSlots).where(eq(machineSlots.serialNo, serialNo)).orderBy(machineSlots.slotNo);
      }, { behavior: "immediate" })
    );
  }

  listMachines(query: MachineQuery): Promise<{ items: MachineSummary[]; total: number }> {
    const since = query.onlineSince;
    const where = query.online === undefined || !since
      ? undefined
      : query.online
      ? gte(machines.lastHeardAt, since)
      : or(isNull(machines.lastHeardAt), lt(machines.lastHeardAt, since));
    return this.#exclusive(async () => {
      const rows = await this.db.select().from(machines).where(where).orderBy(machines.serialNo)
        .limit(query.limit).offset(query.offset);
      const [{ total } = { total: 0 }] = await this.db.select({ total: count() }).from(machines).where(where);
      return { items: rows.map(toSummary), total };
    });
  }

  getMachine(serialNo: string): Promise<MachineDetail | null> {
    return this.#exclusive(async () => {
      const [row] = await this.db.select().from(machines).where(eq(machines.serialNo, serialNo)).limit(1);
      if (!row) return null;
      const slots = await this.db.select({ slotNo: machineSlots.slotNo, stock: machineSlots.stock })
        .from(machineSlots).where(eq(machineSlots.serialNo, serialNo)).orderBy(machineSlots.slotNo);
      const errors = await this.db.select({
        code: machineLogs.code,
        level: machineLogs.level,
        message: machineLogs.message,
        receivedAt: machineLogs.receivedAt,
      }).from(machineLogs).where(and(eq(machineLogs.serialNo, serialNo)))
        .orderBy(desc(machineLogs.receivedAt), desc(machineLogs.id)).limit(20);
      return {
        ...toSummary(row),
        lastHeartbeat: (row.lastHeartbeat as Record<string, unknown> | null) ?? null,
        slots,
        recentErrors: errors,
      };
    });
  }

  // Downlink commands and machine tokens: the SQL is in sqlite_commands.ts.
  machineExists(serialNo: string): Promise<boolean> {
    return this.#exclusive(() => this.#commands.machineExists(serialNo));
  }

  // Under the store's lock and an IMMEDIATE transaction (SQLite's write lock, for another process
  // on the file): `publish` runs before the commit, as the MySQL store does under its row lock.
  setMachineToken(
    serialNo: string,
    tokenHash: string | null,
    at: Date,
    publish?: (tokenHash: string | null) => Promise<void>,
  ): Promise<boolean> {
    return this.#exclusive(() =>
      this.db.transaction(async (tx) => {
        const found = await new SqliteCommands(tx as unknown as SqliteDb).setMachineToken(
          serialNo,
          tokenHash,
          at,
        );
        if (found) await publish?.(tokenHash);
        return found;
      }, { behavior: "immediate" })
    );
  }

  withMachineTokenHash<T>(serialNo: string, fn: (tokenHash: string | null) => Promise<T>): Promise<T> {
    return this.#exclusive(() =>
      this.db.transaction(async (tx) => {
        return await fn(await new SqliteCommands(tx as unknown as SqliteDb).getMachineTokenHash(serialNo));
      }, { behavior: "immediate" })
    );
  }

  getMachineTokenHash(serialNo: string): Promise<string | null> {
    return this.#exclusive(() => this.#commands.getMachineTokenHash(serialNo));
  }

  createCommand(command: NewCommand): Promise<{ command: CommandRecord; created: boolean }> {
    return this.#exclusive(() => this.#commands.createCommand(command));
  }

  getCommand(messageId: string): Promise<CommandRecord | null> {
    return this.#exclusive(() => this.#commands.getCommand(messageId));
  }

  listCommands(serialNo: string, limit: number): Promise<CommandRecord[]> {
    return this.#exclusive(() => this.#commands.listCommands(serialNo, limit));
  }

  // The batch methods loop under the lock: SQLite is in-process, a statement costs no round trip
  // (so `fresh` saves nothing here).
  createCommands(commands: readonly NewCommand[]): Promise<{ command: CommandRecord; created: boolean }[]> {
    return this.#exclusive(async () => {
      const results = [];
      for (const c of commands) results.push(await this.#commands.createCommand(c));
      return results;
    });
  }

  markCommandsSent(messageIds: readonly string[], at: Date): Promise<void> {
    return this.#exclusive(async () => {
      for (const id of messageIds) await this.#commands.markCommandSent(id, at);
    });
  }

  finishQueuedCommand(
    messageId: string,
    status: "expired" | "failed",
    at: Date,
    detail?: Record<string, unknown>,
  ): Promise<boolean> {
    return this.#exclusive(() => this.#commands.finishQueuedCommand(messageId, status, at, detail));
  }

  expireCommands(at: Date): Promise<number> {
    return this.#exclusive(() => this.#commands.expireCommands(at));
  }

  recordCommandAcks(acks: readonly CommandAck[]): Promise<CommandAckOutcome[]> {
    return this.#exclusive(async () => {
      const outcomes: CommandAckOutcome[] = [];
      for (const ack of acks) outcomes.push(await this.#commands.recordCommandAck(ack));
      return outcomes;
    });
  }

  /** Idempotent; waits for the call in progress, then closes the file. */
  close(): Promise<void> {
    this.#closed ??= this.#exclusive(() => {
      this.#statements.clear();
      if (this.#sqlite.isOpen) this.#sqlite.close();
      return Promise.resolve();
    });
    return this.#closed;
  }

  // deno-lint-ignore no-explicit-any
  async #ensureMachines(tx: any, serials: string[]): Promise<void> {
    const unique = [...new Set(serials)].sort();
    for (const part of chunks(unique)) {
      await tx.insert(machines).values(part.map((serialNo) => ({ serialNo }))).onConflictDoNothing({
        target: machines.serialNo,
      });
    }
  }

  /** Runs `fn` after every earlier call has finished (see the module comment). */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`The database ${this.#options.path} is closed`));
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** The sqlite-proxy callback: Drizzle wants rows as arrays, and one row for `get`. */
  // deno-lint-ignore no-explicit-any
  #query(text: string, params: unknown[], method: "run" | "all" | "values" | "get"): { rows: any } {
    let statement = this.#statements.get(text);
    if (!statement) {
      if (this.#statements.size >= STATEMENT_CACHE) this.#statements.clear();
      statement = this.#sqlite.prepare(text);
      this.#statements.set(text, statement);
    }
    const args = params.map(bindable);
    if (method === "run") {
      statement.run(...args);
      return { rows: [] };
    }
    // In node:sqlite (and Deno) since Node 24; missing from the bundled type declarations.
    (statement as StatementSync & { setReturnArrays(on: boolean): void }).setReturnArrays(true);
    if (method === "get") return { rows: statement.get(...args) };
    return { rows: statement.all(...args) };
  }
}

/**
 * @module mysql_store
 * {@link Store} on MySQL 8 / MariaDB 10.11 through Drizzle and a mysql2 pool.
 */
import { and, count, desc, eq, gte, inArray, isNull, lt, or, sql } from "drizzle-orm";
import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import type { MigrationMeta } from "drizzle-orm/migrator";
import { migrate } from "drizzle-orm/mysql2/migrator";
import mysql from "mysql2/promise";
import { MysqlCommands } from "./mysql_commands.ts";
import { embeddedMigrations } from "./embedded_migrations.ts";
import * as schema from "./schema.ts";
import type { CommandAck, CommandAckOutcome, CommandRecord, NewCommand } from "./store.ts";
import { machineLogs, machines, machineSlots, transactions } from "./schema.ts";
import {
  type HeartbeatRecord,
  latestPerMachine,
  type MachineDetail,
  type MachineLogRecord,
  type MachineQuery,
  type MachineSummary,
  type Store,
  type TransactionOutcome,
  type TransactionRecord,
} from "./store.ts";

const DEADLOCK_CODES = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]);

export interface MysqlStoreOptions {
  url: string;
  /** Read the migrations from this drizzle-kit folder instead of the embedded list. */
  migrationsFolder?: string;
  /** Defaults to the committed migrations embedded in the program (db/migrations/embedded.ts). */
  migrations?: readonly MigrationMeta[];
  connectionLimit?: number;
}

/** MariaDB returns JSON columns as text; MySQL as objects. */
export function parseJson<T>(value: unknown): T | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") {
    try {
      return JSON.parse(value) as T;
    } catch {
      return null;
    }
  }
  return value as T;
}

export class MysqlStore implements Store {
  readonly dialect = "mysql" as const;
  readonly pool: mysql.Pool;
  readonly db: MySql2Database<typeof schema>;
  readonly #migrationsFolder?: string;
  readonly #migrations?: readonly MigrationMeta[];
  #closed?: Promise<void>;

  constructor(options: MysqlStoreOptions) {
    this.pool = mysql.createPool({
      uri: options.url,
      connectionLimit: options.connectionLimit ?? 10,
      timezone: "Z",
      decimalNumbers: true,
      enableKeepAlive: true,
      connectTimeout: 5000,
    });
    this.db = drizzle(this.pool, { schema, mode: "default" });
    this.#migrationsFolder = options.migrationsFolder;
    this.#migrations = options.migrations;
  }

  async migrate(): Promise<void> {
    if (this.#migrationsFolder) return await migrate(this.db, { migrationsFolder: this.#migrationsFolder });
    // What drizzle's folder migrator does, minus the disk: a bundle or binary has no migrations folder.
    const { dialect, session } = this.db as unknown as {
      dialect: { migrate(m: MigrationMeta[], s: unknown, c: { migrationsFolder: string }): Promise<void> };
      session: unknown;
    };
    const migrations = [...(this.#migrations ?? embeddedMigrations("mysql"))];
    await dialect.migrate(migrations, session, { migrationsFolder: "" });
  }

  async ping(): Promise<void> {
    await this.db.execute(sql`SELECT 1`);
  }

  recordHeartbeats(rows: readonly HeartbeatRecord[]): Promise<void> {
    // One row per machine, in a fixed order, so concurrent batches lock rows in the same order.
    const latest = latestPerMachine(rows).sort((a, b) => a.serialNo.localeCompare(b.serialNo));
    if (latest.length === 0) return Promise.resolve();
    const newer =
      sql`(${machines.lastHeardAt} IS NULL OR VALUES(${machines.lastHeardAt}) >= ${machines.lastHeardAt})`;
    return this.#withDeadlockRetry(async () => {
      await this.db.insert(machines).values(latest.map((r) => ({
        serialNo: r.serialNo,
        lastHeardAt: r.receivedAt,
        temperature: r.temperature,
        currentPage: r.currentPage,
        lastHeartbeat: r.payload,
      }))).onDuplicateKeyUpdate({
        // MySQL applies these left to right: last_heard_at must come last so `newer` sees the old value.
        set: {
          temperature:
            sql`IF(${newer}, COALESCE(VALUES(${machines.temperature}), ${machines.temperature}), ${machines.temperature})`,
          currentPage:
            sql`IF(${newer}, COALESCE(VALUES(${machines.currentPage}), ${machines.currentPage}), ${machines.currentPage})`,
          lastHeartbeat: sql`IF(${newer}, VALUES(${machines.lastHeartbeat}), ${machines.lastHeartbeat})`,
          updatedAt: sql`CURRENT_TIMESTAMP(3)`,
          lastHeardAt:
            sql`GREATEST(COALESCE(${machines.lastHeardAt}, VALUES(${machines.lastHeardAt})), VALUES(${machines.lastHeardAt}))`,
        },
      });
    });
  }

  recordMachineLogs(rows: readonly MachineLogRecord[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.#withDeadlockRetry(async () => {
      await this.db.transaction(async (tx) => {
        await this.#ensureMachines(tx, rows.map((r) => r.serialNo));
        await tx.insert(machineLogs).values(rows.map((r) => ({
          serialNo: r.serialNo,
          code: r.code,
          level: r.level,
          message: r.message,
          payload: r.payload,
          receivedAt: r.receivedAt,
        })));
      });
    });
  }

  recordTransactions(rows: readonly TransactionRecord[]): Promise<TransactionOutcome> {
    if (rows.length === 0) return Promise.resolve({ applied: [], duplicates: [] });
    return this.#withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const duplicates: string[] = [];
        const unique = new Map<string, TransactionRecord>();
        for (const r of rows) {
          if (unique.has(r.transactionId)) duplicates.push(r.transactionId);
          else unique.set(r.transactionId, r);
        }
        const existing = await tx.select({ id: transactions.transactionId }).from(transactions)
          .where(inArray(transactions.transactionId, [...unique.keys()])).for("update");
        for (const { id } of existing) {
          unique.delete(id);
          duplicates.push(id);
        }
        const fresh = [...unique.values()];
        if (fresh.length > 0) {
          await this.#ensureMachines(tx, fresh.map((r) => r.serialNo));
          // A concurrent insert of the same id fails the unique index and rolls all of this back.
          await tx.insert(transactions).values(fresh.map((r) => ({
            transactionId: r.transactionId,
            serialNo: r.serialNo,
            slotNo: r.slotNo,
            quantity: r.quantity,
            amount: String(r.amount),
            payload: r.payload,
            receivedAt: r.receivedAt,
          })));
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
          await tx.insert(machineSlots)
            .values(slots.map((s) => ({ serialNo: s.serialNo, slotNo: s.slotNo, stock: -s.quantity })))
            .onDuplicateKeyUpdate({
              set: {
                stock: sql`${machineSlots.stock} + VALUES(${machineSlots.stock})`,
                updatedAt: sql`CURRENT_TIMESTAMP(3)`,
              },
            });
        }
        return { applied: fresh.map((r) => r.transactionId), duplicates };
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
    return new MysqlCommands(this.db).machineExists(serialNo);
  }

  setMachineToken(serialNo: string, tokenHash: string | null, at: Date): Promise<boolean> {
    return new MysqlCommands(this.db).setMachineToken(serialNo, tokenHash, at);
  }

  getMachineTokenHash(serialNo: string): Promise<string | null> {
    return new MysqlCommands(this.db).getMachineTokenHash(serialNo);
  }

  createCommand(command: NewCommand): Promise<{ command: CommandRecord; created: boolean }> {
    return new MysqlCommands(this.db).createCommand(command);
  }

  getCommand(messageId: string): Promise<CommandRecord | null> {
    return new MysqlCommands(this.db).getCommand(messageId);
  }

  listCommands(serialNo: string, limit: number): Promise<CommandRecord[]> {
    return new MysqlCommands(this.db).listCommands(serialNo, limit);
  }

  markCommandSent(messageId: string, at: Date): Promise<void> {
    return new MysqlCommands(this.db).markCommandSent(messageId, at);
  }

  finishQueuedCommand(
    messageId: string,
    status: "expired" | "failed",
    at: Date,
    detail?: Record<string, unknown>,
  ): Promise<boolean> {
    return new MysqlCommands(this.db).finishQueuedCommand(messageId, status, at, detail);
  }

  expireCommands(at: Date): Promise<number> {
    return new MysqlCommands(this.db).expireCommands(at);
  }

  recordCommandAck(ack: CommandAck): Promise<CommandAckOutcome> {
    return new MysqlCommands(this.db).recordCommandAck(ack);
  }

  close(): Promise<void> {
    this.#closed ??= this.pool.end().catch(() => {});
    return this.#closed;
  }

  // deno-lint-ignore no-explicit-any
  async #ensureMachines(tx: any, serials: string[]): Promise<void> {
    const unique = [...new Set(serials)].sort();
    await tx.insert(machines).values(unique.map((serialNo) => ({ serialNo })))
      .onDuplicateKeyUpdate({ set: { serialNo: sql`${machines.serialNo}` } });
  }

  async #withDeadlockRetry<T>(fn: () => Promise<T>, tries = 5): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await fn();
      } catch (error) {
        const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ??
          (error as { code?: string }).code;
        if (attempt >= tries || !code || !DEADLOCK_CODES.has(code)) throw error;
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
      }
    }
  }
}

function toSummary(row: typeof machines.$inferSelect): MachineSummary {
  return {
    serialNo: row.serialNo,
    name: row.name,
    registered: row.registered,
    lastHeardAt: row.lastHeardAt,
    temperature: row.temperature,
    currentPage: row.currentPage,
    createdAt: row.createdAt,
  };
}

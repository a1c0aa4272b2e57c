/**
 * @module mysql_commands
 * The SQL behind the {@link Store}'s downlink-command and machine-token methods on MySQL /
 * MariaDB. `MysqlStore` delegates to it, so the command lifecycle lives in one file. Every
 * transition is one conditional UPDATE: two gateways (or a PUBACK racing a machine's ack) can
 * never move a command backwards.
 */
import { desc, eq } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import type mysql from "mysql2/promise";
import type * as schema from "./schema.ts";
import { machineCommands, machines } from "./schema.ts";
import { newCommandRecord, toCommandRecord } from "../command_record.ts";
import { ackOutcome, type AckState } from "../command_transitions.ts";
import { parseJson } from "../parse_json.ts";
import type { CommandAck, CommandAckOutcome, CommandRecord, NewCommand } from "../store.ts";

type Db = MySql2Database<typeof schema>;
type Row = typeof machineCommands.$inferSelect;

/** A row as a record; MariaDB returns JSON columns as text, MySQL as objects. */
function toRecord(row: Row): CommandRecord {
  return toCommandRecord(row, parseJson<Record<string, unknown>>);
}

function affected(result: unknown): number {
  const header = Array.isArray(result) ? result[0] : result;
  return Number((header as { affectedRows?: number })?.affectedRows ?? 0);
}

function isDuplicateKey(error: unknown): boolean {
  for (let e = error as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === "ER_DUP_ENTRY") return true;
  }
  return false;
}

/** Runs a function in one transaction (with the store's deadlock retry). */
export type RunTransaction = <T>(fn: (conn: mysql.PoolConnection) => Promise<T>) => Promise<T>;

const COLUMNS =
  "message_id, serial_no, command, payload, status, source, detail, expires_at, created_at, sent_at, acked_at, updated_at";
const INSERT_COLUMNS =
  "message_id, serial_no, command, payload, status, source, expires_at, created_at, updated_at";
const INSERT_ROW = "(?, ?, ?, ?, 'queued', ?, ?, ?, ?)";

/** A raw `SELECT ${COLUMNS}` row as a record. */
function fromRow(r: mysql.RowDataPacket): CommandRecord {
  return toCommandRecord({
    messageId: r.message_id,
    serialNo: r.serial_no,
    command: r.command,
    payload: r.payload,
    status: r.status,
    source: r.source,
    detail: r.detail,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    sentAt: r.sent_at,
    ackedAt: r.acked_at,
    updatedAt: r.updated_at,
  }, parseJson<Record<string, unknown>>);
}

function insertParams(c: NewCommand): unknown[] {
  return [
    c.messageId,
    c.serialNo,
    c.command,
    JSON.stringify(c.payload),
    c.source,
    c.expiresAt,
    c.createdAt,
    c.createdAt,
  ];
}

// The paths a command takes at 1,000/s (create, send, ack) are plain SQL with placeholders, like
// the uplink's batch writes: Drizzle's query builder cost more CPU per statement than the
// round trip, and capped the downlink. The rest goes through Drizzle.
export class MysqlCommands {
  constructor(
    private readonly db: Db,
    private readonly pool: mysql.Pool,
    private readonly transaction: RunTransaction,
  ) {}

  async machineExists(serialNo: string): Promise<boolean> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
      "SELECT 1 FROM machines WHERE serial_no = ? LIMIT 1",
      [serialNo],
    );
    return rows.length > 0;
  }

  /** The UPDATE / upsert takes the machine's row lock; `publish` runs under it, before the commit. */
  setMachineToken(
    serialNo: string,
    tokenHash: string | null,
    at: Date,
    publish?: (tokenHash: string | null) => Promise<void>,
  ): Promise<boolean> {
    return this.transaction(async (conn) => {
      if (tokenHash === null) {
        const [result] = await conn.query(
          "UPDATE machines SET api_token_hash = NULL, updated_at = ? WHERE serial_no = ?",
          [at, serialNo],
        );
        if (affected(result) === 0) return false;
      } else {
        await conn.query(
          `INSERT INTO machines (serial_no, registered, api_token_hash, token_issued_at) VALUES (?, TRUE, ?, ?)
            ON DUPLICATE KEY UPDATE registered = TRUE, api_token_hash = VALUES(api_token_hash),
              token_issued_at = VALUES(token_issued_at), updated_at = VALUES(token_issued_at)`,
          [serialNo, tokenHash, at],
        );
      }
      await publish?.(tokenHash);
      return true;
    });
  }

  withMachineTokenHash<T>(serialNo: string, fn: (tokenHash: string | null) => Promise<T>): Promise<T> {
    return this.transaction(async (conn) => {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT api_token_hash FROM machines WHERE serial_no = ? FOR UPDATE",
        [serialNo],
      );
      return await fn((rows[0]?.api_token_hash as string | null | undefined) ?? null);
    });
  }

  async getMachineTokenHash(serialNo: string): Promise<string | null> {
    const [row] = await this.db.select({ hash: machines.apiTokenHash }).from(machines)
      .where(eq(machines.serialNo, serialNo)).limit(1);
    return row?.hash ?? null;
  }

  async createCommand(c: NewCommand): Promise<{ command: CommandRecord; created: boolean }> {
    try {
      await this.pool.query(
        `INSERT INTO machine_commands (${INSERT_COLUMNS}) VALUES ${INSERT_ROW}`,
        insertParams(c),
      );
      return { command: newCommandRecord(c), created: true };
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
    const command = await this.getCommand(c.messageId);
    if (!command) throw new Error(`Command ${c.messageId} vanished right after it was stored`);
    return { command, created: false };
  }

  async createCommands(
    cs: readonly NewCommand[],
    options?: { fresh?: boolean },
  ): Promise<{ command: CommandRecord; created: boolean }[]> {
    if (cs.length === 0) return [];
    // Read first: commands from the API are already stored, so most batches need this one query.
    // Ids made just now cannot be stored yet; if one is, the INSERT's duplicate key says so below.
    const [rows] = options?.fresh ? [[]] : await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM machine_commands WHERE message_id IN (?)`,
      [[...new Set(cs.map((c) => c.messageId))]],
    );
    const found = new Map(rows.map((r) => [r.message_id as string, fromRow(r)]));
    const missing = new Map<string, NewCommand>();
    for (const c of cs) if (!found.has(c.messageId) && !missing.has(c.messageId)) missing.set(c.messageId, c);
    const created = new Map<string, CommandRecord>();
    if (missing.size > 0) {
      const fresh = [...missing.values()];
      try {
        await this.pool.query(
          `INSERT INTO machine_commands (${INSERT_COLUMNS}) VALUES ${fresh.map(() => INSERT_ROW).join(", ")}`,
          fresh.flatMap(insertParams),
        );
        for (const c of fresh) created.set(c.messageId, newCommandRecord(c));
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        // Someone stored one of them meanwhile: the statement changed nothing; one by one.
        for (const c of fresh) {
          const one = await this.createCommand(c);
          (one.created ? created : found).set(c.messageId, one.command);
        }
      }
    }
    const seen = new Set<string>();
    return cs.map((c) => {
      const fresh = created.get(c.messageId);
      const first = !seen.has(c.messageId);
      seen.add(c.messageId);
      if (fresh) return { command: fresh, created: first };
      return { command: found.get(c.messageId)!, created: false };
    });
  }

  async getCommand(messageId: string): Promise<CommandRecord | null> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT ${COLUMNS} FROM machine_commands WHERE message_id = ? LIMIT 1`,
      [messageId],
    );
    return rows[0] ? fromRow(rows[0]) : null;
  }

  async listCommands(serialNo: string, limit: number): Promise<CommandRecord[]> {
    const rows = await this.db.select().from(machineCommands)
      .where(eq(machineCommands.serialNo, serialNo))
      .orderBy(desc(machineCommands.createdAt), desc(machineCommands.id))
      .limit(limit);
    return rows.map(toRecord);
  }

  async markCommandsSent(messageIds: readonly string[], at: Date): Promise<void> {
    if (messageIds.length === 0) return;
    // Assigned left to right: `status` still sees the old value; sent_at keeps the first PUBACK.
    await this.pool.query(
      `UPDATE machine_commands SET sent_at = COALESCE(sent_at, ?),
        status = IF(status = 'queued', 'sent', status), updated_at = ?
       WHERE message_id IN (?)`,
      [at, at, [...new Set(messageIds)]],
    );
  }

  async finishQueuedCommand(
    messageId: string,
    status: "expired" | "failed",
    at: Date,
    detail?: Record<string, unknown>,
  ): Promise<boolean> {
    const [result] = await this.pool.query<mysql.ResultSetHeader>(
      `UPDATE machine_commands SET status = ?, updated_at = ?${detail ? ", detail = ?" : ""}
       WHERE message_id = ? AND status = 'queued'`,
      detail ? [status, at, JSON.stringify(detail), messageId] : [status, at, messageId],
    );
    return result.affectedRows > 0;
  }

  /**
   * Finds the commands due first with a plain (consistent, lock-free) read, then updates those rows
   * by their unique key, checking the condition again. One UPDATE over the status index every
   * second locked its way through the index while the acks locked rows in the other order
   * (deadlocks at 1,000 commands/s), and when nothing is due, the usual case, it is one read now.
   */
  async expireCommands(at: Date): Promise<number> {
    const BATCH = 1000;
    let expired = 0;
    for (;;) {
      const [due] = await this.pool.query<mysql.RowDataPacket[]>(
        `SELECT message_id FROM machine_commands
         WHERE status IN ('queued', 'sent', 'delivered') AND expires_at <= ? LIMIT ${BATCH}`,
        [at],
      );
      if (due.length === 0) return expired;
      const [result] = await this.pool.query<mysql.ResultSetHeader>(
        `UPDATE machine_commands SET status = 'expired', updated_at = ?
         WHERE message_id IN (?) AND status IN ('queued', 'sent', 'delivered') AND expires_at <= ?`,
        [at, due.map((r) => r.message_id as string), at],
      );
      expired += result.affectedRows;
      if (due.length < BATCH) return expired;
    }
  }

  /**
   * All in one transaction: the rows read once and locked, the acks applied in order by
   * {@link ackOutcome} ("received" then "ok" for one command land in that order), and each changed
   * row written once. Three statements for a batch instead of one UPDATE per ack.
   */
  recordCommandAcks(acks: readonly CommandAck[]): Promise<CommandAckOutcome[]> {
    if (acks.length === 0) return Promise.resolve([]);
    return this.transaction(async (conn) => {
      const ids = [...new Set(acks.map((a) => a.messageId))].sort(); // one lock order for all batches
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT message_id, serial_no, status, sent_at FROM machine_commands WHERE message_id IN (?) FOR UPDATE",
        [ids],
      );
      const states = new Map<string, AckState>(
        rows.map((
          r,
        ) => [r.message_id as string, { serialNo: r.serial_no, status: r.status, sentAt: r.sent_at }]),
      );
      const changed = new Map<string, CommandAck>();
      const outcomes = acks.map((ack) => {
        const state = states.get(ack.messageId);
        const outcome = ackOutcome(state, ack);
        if (outcome === "applied") {
          state!.status = ack.status;
          // received_at (and so ack.at) has whole seconds: the ack is never recorded before the PUBACK.
          const sentAt = state!.sentAt;
          changed.set(ack.messageId, sentAt && sentAt > ack.at ? { ...ack, at: sentAt } : ack);
        }
        return outcome;
      });
      if (changed.size > 0) {
        const writes = [...changed.values()];
        const cases = (column: string, value: (a: CommandAck) => unknown) => ({
          text: `${column} = CASE message_id ${writes.map(() => "WHEN ? THEN ?").join(" ")} END`,
          params: writes.flatMap((a) => [a.messageId, value(a)]),
        });
        const sets = [
          cases("status", (a) => a.status),
          cases("detail", (a) => JSON.stringify(a.detail)),
          cases("acked_at", (a) => a.at),
          cases("updated_at", (a) => a.at),
        ];
        await conn.query(
          `UPDATE machine_commands SET ${sets.map((x) => x.text).join(", ")} WHERE message_id IN (?)`,
          [...sets.flatMap((x) => x.params), writes.map((a) => a.messageId)],
        );
      }
      return outcomes;
    });
  }
}

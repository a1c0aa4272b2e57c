/**
 * @module mysql_commands
 * The SQL behind the {@link Store}'s downlink-command and machine-token methods on MySQL /
 * MariaDB. `MysqlStore` delegates to it, so the command lifecycle lives in one file. Every
 * transition is one conditional UPDATE: two gateways (or a PUBACK racing a machine's ack) can
 * never move a command backwards.
 */
import { and, desc, eq, inArray, isNotNull, lte, or, sql } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import type * as schema from "./schema.ts";
import { machineCommands, machines } from "./schema.ts";
import { toCommandRecord } from "./command_record.ts";
import { parseJson } from "./parse_json.ts";
import type { CommandAck, CommandAckOutcome, CommandRecord, NewCommand } from "./store.ts";

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

export class MysqlCommands {
  constructor(private readonly db: Db) {}

  async machineExists(serialNo: string): Promise<boolean> {
    const rows = await this.db.select({ id: machines.id }).from(machines)
      .where(eq(machines.serialNo, serialNo)).limit(1);
    return rows.length > 0;
  }

  async setMachineToken(serialNo: string, tokenHash: string | null, at: Date): Promise<boolean> {
    if (tokenHash === null) {
      const result = await this.db.update(machines)
        .set({ apiTokenHash: null, updatedAt: at })
        .where(eq(machines.serialNo, serialNo));
      return affected(result) > 0;
    }
    await this.db.insert(machines)
      .values({ serialNo, registered: true, apiTokenHash: tokenHash, tokenIssuedAt: at })
      .onDuplicateKeyUpdate({
        set: { registered: true, apiTokenHash: tokenHash, tokenIssuedAt: at, updatedAt: at },
      });
    return true;
  }

  async getMachineTokenHash(serialNo: string): Promise<string | null> {
    const [row] = await this.db.select({ hash: machines.apiTokenHash }).from(machines)
      .where(eq(machines.serialNo, serialNo)).limit(1);
    return row?.hash ?? null;
  }

  async createCommand(c: NewCommand): Promise<{ command: CommandRecord; created: boolean }> {
    let created = true;
    try {
      await this.db.insert(machineCommands).values({
        messageId: c.messageId,
        serialNo: c.serialNo,
        command: c.command,
        payload: c.payload,
        status: "queued",
        source: c.source,
        expiresAt: c.expiresAt,
        createdAt: c.createdAt,
        updatedAt: c.createdAt,
      });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      created = false;
    }
    const command = await this.getCommand(c.messageId);
    if (!command) throw new Error(`Command ${c.messageId} vanished right after it was stored`);
    return { command, created };
  }

  async getCommand(messageId: string): Promise<CommandRecord | null> {
    const [row] = await this.db.select().from(machineCommands)
      .where(eq(machineCommands.messageId, messageId)).limit(1);
    return row ? toRecord(row) : null;
  }

  async listCommands(serialNo: string, limit: number): Promise<CommandRecord[]> {
    const rows = await this.db.select().from(machineCommands)
      .where(eq(machineCommands.serialNo, serialNo))
      .orderBy(desc(machineCommands.createdAt), desc(machineCommands.id))
      .limit(limit);
    return rows.map(toRecord);
  }

  async markCommandSent(messageId: string, at: Date): Promise<void> {
    await this.db.update(machineCommands).set({
      sentAt: sql`COALESCE(${machineCommands.sentAt}, ${at})`,
      status:
        sql`CASE WHEN ${machineCommands.status} = 'queued' THEN 'sent' ELSE ${machineCommands.status} END`,
      updatedAt: at,
    }).where(eq(machineCommands.messageId, messageId));
  }

  async finishQueuedCommand(
    messageId: string,
    status: "expired" | "failed",
    at: Date,
    detail?: Record<string, unknown>,
  ): Promise<boolean> {
    const result = await this.db.update(machineCommands)
      .set({ status, updatedAt: at, ...(detail ? { detail } : {}) })
      .where(and(eq(machineCommands.messageId, messageId), eq(machineCommands.status, "queued")));
    return affected(result) > 0;
  }

  async expireCommands(at: Date): Promise<number> {
    const result = await this.db.update(machineCommands)
      .set({ status: "expired", updatedAt: at })
      .where(and(
        inArray(machineCommands.status, ["queued", "sent", "delivered"]),
        lte(machineCommands.expiresAt, at),
      ));
    return affected(result);
  }

  async recordCommandAck(ack: CommandAck): Promise<CommandAckOutcome> {
    const from = ack.status === "delivered" ? inArray(machineCommands.status, ["queued", "sent"]) : or(
      inArray(machineCommands.status, ["queued", "sent", "delivered"]),
      and(eq(machineCommands.status, "expired"), isNotNull(machineCommands.sentAt)),
    );
    const result = await this.db.update(machineCommands)
      .set({ status: ack.status, detail: ack.detail, ackedAt: ack.at, updatedAt: ack.at })
      .where(and(
        eq(machineCommands.messageId, ack.messageId),
        eq(machineCommands.serialNo, ack.serialNo),
        from,
      ));
    if (affected(result) > 0) return "applied";
    const current = await this.getCommand(ack.messageId);
    if (!current) return "unknown";
    return current.serialNo === ack.serialNo ? "stale" : "wrong_machine";
  }
}

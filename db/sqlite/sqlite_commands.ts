/**
 * @module sqlite_commands
 * The SQL behind the {@link Store}'s downlink-command and machine-token methods on SQLite, the twin
 * of `mysql_commands.ts` (same transitions, same conditional UPDATEs, so a command never moves
 * backwards). `SqliteStore` calls it under its lock; affected rows come from `RETURNING`, since the
 * sqlite-proxy driver reports no change counts.
 */
import { and, desc, eq, inArray, isNotNull, lte, or, sql } from "drizzle-orm";
import type { SqliteRemoteDatabase } from "drizzle-orm/sqlite-proxy";
import type * as schema from "./schema.ts";
import { machineCommands, machines } from "./schema.ts";
import { toCommandRecord } from "../command_record.ts";
import type { CommandAck, CommandAckOutcome, CommandRecord, NewCommand } from "../store.ts";

type Db = SqliteRemoteDatabase<typeof schema>;
type Row = typeof machineCommands.$inferSelect;

/** A row as a record; Drizzle has already parsed the JSON columns. */
function toRecord(row: Row): CommandRecord {
  return toCommandRecord(row, (value) => (value as Record<string, unknown> | null) ?? null);
}

export class SqliteCommands {
  constructor(private readonly db: Db) {}

  async machineExists(serialNo: string): Promise<boolean> {
    const rows = await this.db.select({ id: machines.id }).from(machines)
      .where(eq(machines.serialNo, serialNo)).limit(1);
    return rows.length > 0;
  }

  async setMachineToken(serialNo: string, tokenHash: string | null, at: Date): Promise<boolean> {
    if (tokenHash === null) {
      const changed = await this.db.update(machines)
        .set({ apiTokenHash: null, updatedAt: at })
        .where(eq(machines.serialNo, serialNo))
        .returning({ id: machines.id });
      return changed.length > 0;
    }
    await this.db.insert(machines)
      .values({ serialNo, registered: true, apiTokenHash: tokenHash, tokenIssuedAt: at })
      .onConflictDoUpdate({
        target: machines.serialNo,
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
    const inserted = await this.db.insert(machineCommands).values({
      messageId: c.messageId,
      serialNo: c.serialNo,
      command: c.command,
      payload: c.payload,
      status: "queued",
      source: c.source,
      expiresAt: c.expiresAt,
      createdAt: c.createdAt,
      updatedAt: c.createdAt,
    }).onConflictDoNothing({ target: machineCommands.messageId }).returning({ id: machineCommands.id });
    const command = await this.getCommand(c.messageId);
    if (!command) throw new Error(`Command ${c.messageId} vanished right after it was stored`);
    return { command, created: inserted.length > 0 };
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
      // A raw fragment: Drizzle maps a Date to milliseconds only when it is bound to a column.
      sentAt: sql`COALESCE(${machineCommands.sentAt}, ${at.getTime()})`,
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
    const changed = await this.db.update(machineCommands)
      .set({ status, updatedAt: at, ...(detail ? { detail } : {}) })
      .where(and(eq(machineCommands.messageId, messageId), eq(machineCommands.status, "queued")))
      .returning({ id: machineCommands.id });
    return changed.length > 0;
  }

  async expireCommands(at: Date): Promise<number> {
    const changed = await this.db.update(machineCommands)
      .set({ status: "expired", updatedAt: at })
      .where(and(
        inArray(machineCommands.status, ["queued", "sent", "delivered"]),
        lte(machineCommands.expiresAt, at),
      ))
      .returning({ id: machineCommands.id });
    return changed.length;
  }

  async recordCommandAck(ack: CommandAck): Promise<CommandAckOutcome> {
    const notBeforeSent = sql`MAX(${ack.at.getTime()}, COALESCE(${machineCommands.sentAt}, 0))`;
    const from = ack.status === "delivered" ? inArray(machineCommands.status, ["queued", "sent"]) : or(
      inArray(machineCommands.status, ["queued", "sent", "delivered"]),
      and(eq(machineCommands.status, "expired"), isNotNull(machineCommands.sentAt)),
    );
    const changed = await this.db.update(machineCommands)
      // received_at (and so ack.at) has whole seconds: the ack is never recorded before the PUBACK.
      .set({ status: ack.status, detail: ack.detail, ackedAt: notBeforeSent, updatedAt: notBeforeSent })
      .where(and(
        eq(machineCommands.messageId, ack.messageId),
        eq(machineCommands.serialNo, ack.serialNo),
        from,
      ))
      .returning({ id: machineCommands.id });
    if (changed.length > 0) return "applied";
    const current = await this.getCommand(ack.messageId);
    if (!current) return "unknown";
    return current.serialNo === ack.serialNo ? "stale" : "wrong_machine";
  }
}

/**
 * @module command_record
 * A `machine_commands` row as a {@link CommandRecord}, for both dialects. Only the reading of the
 * JSON columns differs (MariaDB may return them as text, SQLite's Drizzle has parsed them), so the
 * caller passes how to read one.
 */
import type { CommandRecord, CommandStatus, NewCommand } from "./store.ts";

/** A `machine_commands` row of either dialect: the record's columns, the JSON and status still raw. */
type CommandRow = Readonly<Omit<CommandRecord, "payload" | "detail" | "status">> & {
  readonly payload: unknown;
  readonly detail: unknown;
  readonly status: string;
};

/** Maps a row; `json` reads a JSON column (`payload`, `detail`), `null` when there is none. */
export function toCommandRecord(
  row: CommandRow,
  json: (value: unknown) => Record<string, unknown> | null,
): CommandRecord {
  return {
    messageId: row.messageId,
    serialNo: row.serialNo,
    command: row.command,
    payload: json(row.payload) ?? {},
    status: row.status as CommandStatus,
    source: row.source,
    detail: json(row.detail),
    expiresAt: row.expiresAt,
    createdAt: row.createdAt,
    sentAt: row.sentAt,
    ackedAt: row.ackedAt,
    updatedAt: row.updatedAt,
  };
}

/** The row a command's INSERT writes (status `queued`, nothing sent or acked yet), without reading it back. */
export function newCommandRecord(c: NewCommand): CommandRecord {
  return { ...c, status: "queued", detail: null, sentAt: null, ackedAt: null, updatedAt: c.createdAt };
}

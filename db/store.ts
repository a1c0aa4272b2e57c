/**
 * @module store
 * What the jobs and routes need from the database, as one interface. All SQL lives in its
 * implementations (`mysql_store.ts`, and the embedded SQLite one), so a dialect can be added
 * without touching a job.
 */
import type { FleetViews } from "./fleet_views.ts";

export interface HeartbeatRecord {
  serialNo: string;
  receivedAt: Date;
  temperature: number | null;
  currentPage: number | null;
  /** The heartbeat payload as sent, extra fields kept. */
  payload: Record<string, unknown>;
}

export interface MachineLogRecord {
  serialNo: string;
  receivedAt: Date;
  code: string;
  level: string;
  message: string;
  payload: Record<string, unknown>;
}

export interface TransactionRecord {
  transactionId: string;
  serialNo: string;
  slotNo: number;
  quantity: number;
  amount: number;
  receivedAt: Date;
  payload: Record<string, unknown>;
}

/**
 * A sale's identity: machines number their own sales, so the same transaction_id from two machines
 * is two sales. Both parts compare exactly (case, accents, trailing spaces).
 */
export interface SaleKey {
  serialNo: string;
  transactionId: string;
}

/** One string per sale, for maps and sets (a serial_no never holds NUL). */
export function saleKey(s: SaleKey): string {
  return `${s.serialNo}\u0000${s.transactionId}`;
}

export interface TransactionOutcome {
  /** Sales recorded now (stock decremented now). */
  applied: SaleKey[];
  /** Sales already recorded before, or repeated in the batch: nothing changed. */
  duplicates: SaleKey[];
  /**
   * Slots whose stock was known (a `machine_slots` row) and smaller than what these sales took from
   * them: a machine cannot sell from an empty slot, so the sales are recorded (stock goes below 0)
   * and the caller raises an alert. A slot without a row, or already below 0, has no known stock and
   * is not listed (an unstocked slot would otherwise alert on every sale).
   */
  emptySlots?: EmptySlotSale[];
}

export interface EmptySlotSale {
  serialNo: string;
  slotNo: number;
  stockBefore: number;
  sold: number;
  transactionIds: string[];
}

export interface MachineSummary {
  serialNo: string;
  name: string | null;
  registered: boolean;
  lastHeardAt: Date | null;
  temperature: number | null;
  currentPage: number | null;
  createdAt: Date;
}

/** A slot's stock; below 0 when sales the gateway was not told the stock for took from it. */
export interface SlotStock {
  slotNo: number;
  stock: number;
}

export interface MachineDetail extends MachineSummary {
  lastHeartbeat: Record<string, unknown> | null;
  slots: SlotStock[];
  recentErrors: { code: string; level: string; message: string; receivedAt: Date }[];
}

export interface MachineQuery {
  limit: number;
  offset: number;
  /** With `onlineSince`: true keeps machines heard since then, false the others. */
  online?: boolean;
  onlineSince?: Date;
}

/** A downlink command's lifecycle (see downlink/downlink.ts); the last three are terminal. */
export const COMMAND_STATUSES = ["queued", "sent", "delivered", "succeeded", "failed", "expired"] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export interface CommandRecord {
  messageId: string;
  serialNo: string;
  command: string;
  payload: Record<string, unknown>;
  status: CommandStatus;
  /** "api" (HTTP) or "queue" (a producer's RPUSH). */
  source: string;
  /** The machine's last ack (its JSON minus message_id), or the gateway's note on a failure. */
  detail: Record<string, unknown> | null;
  expiresAt: Date;
  createdAt: Date;
  /** When the broker acknowledged the publish (PUBACK). */
  sentAt: Date | null;
  /** When the machine last acknowledged it. */
  ackedAt: Date | null;
  updatedAt: Date;
}

export interface NewCommand {
  messageId: string;
  serialNo: string;
  command: string;
  payload: Record<string, unknown>;
  source: "api" | "queue";
  createdAt: Date;
  expiresAt: Date;
}

export interface CommandAck {
  messageId: string;
  /** The machine that sent the ack (from its topic). */
  serialNo: string;
  status: "delivered" | "succeeded" | "failed";
  detail: Record<string, unknown>;
  at: Date;
}

/** applied: recorded; stale: the command was already past that point; unknown / wrong_machine: ignored. */
export type CommandAckOutcome = "applied" | "stale" | "unknown" | "wrong_machine";

export interface Store {
  readonly dialect: "mysql" | "sqlite";
  /** The operator console's reads (fleet page, sales, error feed, sales per hour): same SQL on both. */
  readonly views: FleetViews;
  /** Applies the committed migrations. */
  migrate(): Promise<void>;
  /** Throws when the database cannot be reached. */
  ping(): Promise<void>;
  /** Upserts `machines`; unknown serials become unregistered machines. Last heartbeat wins. */
  recordHeartbeats(rows: readonly HeartbeatRecord[]): Promise<void>;
  recordMachineLogs(rows: readonly MachineLogRecord[]): Promise<void>;
  /** Inserts transactions and decrements stock in one DB transaction, once per sale (serial_no, transaction_id). */
  recordTransactions(rows: readonly TransactionRecord[]): Promise<TransactionOutcome>;
  /**
   * Sets the stock of these slots of a machine (absolute: a restock or a count), adding the slot rows
   * it lacks and keeping its other slots, in one DB transaction; a slot_no given twice: the last wins.
   * Returns all the machine's slots after the write, by slot_no, or null (nothing written) when
   * `machines` has no row for `serialNo`.
   */
  setSlotStock(serialNo: string, slots: readonly SlotStock[]): Promise<SlotStock[] | null>;
  listMachines(query: MachineQuery): Promise<{ items: MachineSummary[]; total: number }>;
  getMachine(serialNo: string): Promise<MachineDetail | null>;
  /** True when `machines` has a row for `serialNo` (registered or heard from). */
  machineExists(serialNo: string): Promise<boolean>;
  /**
   * Sets a machine's token hash (hex SHA-256) and `token_issued_at`, marking it registered and
   * creating it if needed; `null` clears the hash (revoke). Returns false only when clearing a
   * machine that does not exist. `publish` runs after the row is written and before it commits,
   * holding the machine's row lock (a throw rolls the change back): concurrent rotations of one
   * machine, across gateways, reach the database and the credential cache in the same order.
   */
  setMachineToken(
    serialNo: string,
    tokenHash: string | null,
    at: Date,
    publish?: (tokenHash: string | null) => Promise<void>,
  ): Promise<boolean>;
  /** The machine's current token hash, or null (unknown machine, never issued, or revoked). */
  getMachineTokenHash(serialNo: string): Promise<string | null>;
  /**
   * Runs `fn` with the machine's current token hash while holding its row lock, so no rotation or
   * revocation commits meanwhile: how the credential cache is re-seeded without ever putting back
   * a hash that was just replaced.
   */
  withMachineTokenHash<T>(serialNo: string, fn: (tokenHash: string | null) => Promise<T>): Promise<T>;
  /**
   * Inserts a command with status `queued` unless its message_id exists (idempotent: the same id
   * accepted twice is one command). Returns the stored row and whether this call inserted it.
   */
  createCommand(command: NewCommand): Promise<{ command: CommandRecord; created: boolean }>;
  /**
   * {@link createCommand} for a batch, in one or two statements; results in the input's order.
   * `fresh`: the caller made every message_id itself just now, so the lookup of stored ones is
   * skipped (the result is the same if one exists after all, only slower).
   */
  createCommands(
    commands: readonly NewCommand[],
    options?: { fresh?: boolean },
  ): Promise<{ command: CommandRecord; created: boolean }[]>;
  getCommand(messageId: string): Promise<CommandRecord | null>;
  /** A machine's commands, newest first. */
  listCommands(serialNo: string, limit: number): Promise<CommandRecord[]>;
  /**
   * The broker acknowledged these publishes: sets `sent_at` if unset and moves `queued` → `sent`. Any
   * other status is kept (a machine's ack can be recorded before the PUBACK is).
   */
  markCommandsSent(messageIds: readonly string[], at: Date): Promise<void>;
  /**
   * Ends a command the gateway will not publish: `queued` → `expired` or `failed` (with `detail`).
   * Only from `queued`; returns whether it changed.
   */
  finishQueuedCommand(
    messageId: string,
    status: "expired" | "failed",
    at: Date,
    detail?: Record<string, unknown>,
  ): Promise<boolean>;
  /** TTL sweep: every `queued`, `sent` or `delivered` command with `expires_at <= at` → `expired`. Returns how many. */
  expireCommands(at: Date): Promise<number>;
  /**
   * Records machines' acks, in order and in one transaction where the database has them. Each is
   * recorded when `ack.serialNo` is the command's target: `delivered` from
   * queued/sent; `succeeded`/`failed` from queued/sent/delivered, and from `expired` when the command
   * had been published (the machine's real outcome beats the timeout). Sets `acked_at` and `detail`.
   */
  recordCommandAcks(acks: readonly CommandAck[]): Promise<CommandAckOutcome[]>;
  close(): Promise<void>;
}

/** One entry per slot_no (the last given wins), by slot_no: the order both stores write in. */
export function lastPerSlot(slots: readonly SlotStock[]): SlotStock[] {
  const bySlot = new Map<number, SlotStock>();
  for (const s of slots) bySlot.set(s.slotNo, { slotNo: s.slotNo, stock: s.stock });
  return [...bySlot.values()].sort((a, b) => a.slotNo - b.slotNo);
}

/** Keeps the newest heartbeat per machine: the coalescing that lets a batch write one row each. */
export function latestPerMachine(rows: readonly HeartbeatRecord[]): HeartbeatRecord[] {
  const latest = new Map<string, HeartbeatRecord>();
  for (const row of rows) {
    const seen = latest.get(row.serialNo);
    if (!seen || row.receivedAt >= seen.receivedAt) latest.set(row.serialNo, row);
  }
  return [...latest.values()];
}

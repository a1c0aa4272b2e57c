/**
 * @module store
 * What the jobs and routes need from the database, as one interface. All SQL lives in its
 * implementations (`mysql_store.ts`, and the embedded SQLite one), so a dialect can be added
 * without touching a job.
 */

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

export interface TransactionOutcome {
  /** Transaction ids recorded now (stock decremented now). */
  applied: string[];
  /** Transaction ids already recorded before: nothing changed. */
  duplicates: string[];
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

export interface MachineDetail extends MachineSummary {
  lastHeartbeat: Record<string, unknown> | null;
  slots: { slotNo: number; stock: number }[];
  recentErrors: { code: string; level: string; message: string; receivedAt: Date }[];
}

export interface MachineQuery {
  limit: number;
  offset: number;
  /** With `onlineSince`: true keeps machines heard since then, false the others. */
  online?: boolean;
  onlineSince?: Date;
}

export interface Store {
  readonly dialect: "mysql" | "sqlite";
  /** Applies the committed migrations. */
  migrate(): Promise<void>;
  /** Throws when the database cannot be reached. */
  ping(): Promise<void>;
  /** Upserts `machines`; unknown serials become unregistered machines. Last heartbeat wins. */
  recordHeartbeats(rows: readonly HeartbeatRecord[]): Promise<void>;
  recordMachineLogs(rows: readonly MachineLogRecord[]): Promise<void>;
  /** Inserts transactions and decrements stock in one DB transaction, once per transaction id. */
  recordTransactions(rows: readonly TransactionRecord[]): Promise<TransactionOutcome>;
  listMachines(query: MachineQuery): Promise<{ items: MachineSummary[]; total: number }>;
  getMachine(serialNo: string): Promise<MachineDetail | null>;
  close(): Promise<void>;
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

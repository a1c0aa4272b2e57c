/**
 * @module sqlite_queue
 * {@link ReliableQueue} on a SQLite file through `node:sqlite`: the embedded default when `REDIS_URL`
 * is unset. Same semantics as the Redis lists: a lease marks rows `processing` for one consumer
 * (stable across restarts), `ack` deletes them, `retry` makes them `delayed` until their time comes
 * (then they go to the tail), `release` puts them back at the head, dead letters keep reason and
 * attempts, `recover()` (at start) puts back the rows of this consumer and of consumers not seen
 * alive within the liveness TTL, and `reclaim()` (the periodic sweep) those of the latter only.
 * Liveness is `queue_consumers.alive_at`, refreshed by a timer while the handle is open. In the
 * embedded mode one process owns the file and the sweep finds nothing; it matters when several
 * processes share one file, and keeps the two backends alike.
 *
 * Every operation is one synchronous `BEGIN IMMEDIATE` transaction on a `DatabaseSync`, so queues that
 * share a connection never interleave, and several processes on one file serialise on SQLite's write
 * lock (WAL, `busy_timeout`). A blocking lease polls with a short sleep, cut short by pushes made
 * in this process, by the next delayed job falling due, or by the abort signal.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type {
  DeadLetter,
  Lease,
  QueueDepth,
  Reclaimed,
  ReliableQueue,
  RetryOptions,
} from "../reliable_queue.ts";

const ALIVE_TTL_MS = 30_000;
const POLL_MS = 200;
const PROMOTE_BATCH = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS queue_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  raw TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('ready', 'processing', 'delayed')),
  -- FIFO order of ready rows; a push takes max + 1, a release or recover takes min - n.
  position INTEGER NOT NULL,
  consumer TEXT,
  available_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_jobs_state_position ON queue_jobs (queue, state, position);
CREATE INDEX IF NOT EXISTS queue_jobs_position ON queue_jobs (queue, position);
CREATE INDEX IF NOT EXISTS queue_jobs_state_available ON queue_jobs (queue, state, available_at);
CREATE INDEX IF NOT EXISTS queue_jobs_consumer ON queue_jobs (queue, consumer) WHERE consumer IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue_dead (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  raw TEXT NOT NULL,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  failed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dead_queue ON queue_dead (queue, id);
CREATE TABLE IF NOT EXISTS queue_consumers (
  queue TEXT NOT NULL,
  consumer TEXT NOT NULL,
  alive_at INTEGER NOT NULL,
  PRIMARY KEY (queue, consumer)
);`;

export interface SqliteQueueOptions {
  /** Stable per process and worker slot, so a restart finds its own unfinished jobs. */
  consumerId: string;
  /**
   * A consumer whose liveness was not refreshed for this long is dead: `reclaim()` (or `recover()`)
   * of another consumer takes its jobs. Refreshed every third of it while the handle is open.
   */
  aliveTtlMs?: number;
  /** How often a blocking lease looks for jobs pushed by another process. */
  pollMs?: number;
}

type Waiter = () => void;

/** In-process pushes wake the leases waiting on the same connection and queue name. */
const waiters = new WeakMap<DatabaseSync, Map<string, Set<Waiter>>>();

function waitersOf(db: DatabaseSync, name: string): Set<Waiter> {
  let byName = waiters.get(db);
  if (!byName) waiters.set(db, byName = new Map());
  let set = byName.get(name);
  if (!set) byName.set(name, set = new Set());
  return set;
}

export class SqliteQueue implements ReliableQueue {
  readonly #db: DatabaseSync;
  readonly #consumer: string;
  readonly #aliveTtlMs: number;
  readonly #pollMs: number;
  readonly #statements = new Map<string, StatementSync>();
  readonly #wakeOnClose = new Set<Waiter>();
  #aliveAt = 0;
  /** Refreshes `alive_at` while open, from the first heartbeat on (see `#keepAlive`). */
  #aliveTimer?: ReturnType<typeof setInterval>;
  #closed = false;

  /**
   * Opens (creating it and its directory if needed) a queue database file in WAL mode with the
   * queue tables. The caller owns it: close it after the queues that use it.
   */
  static openDatabase(path: string, busyTimeoutMs = 5000): DatabaseSync {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const db = new DatabaseSync(path);
    try {
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
      db.exec("PRAGMA journal_mode = WAL");
      // NORMAL is durable across process crashes in WAL mode; only a power loss may lose the last commits.
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec(SCHEMA);
    } catch (error) {
      db.close();
      throw new Error(`Cannot open the queue database ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return db;
  }

  constructor(db: DatabaseSync, readonly name: string, options: SqliteQueueOptions) {
    this.#db = db;
    this.#consumer = options.consumerId;
    this.#aliveTtlMs = options.aliveTtlMs ?? ALIVE_TTL_MS;
    this.#pollMs = options.pollMs ?? POLL_MS;
  }

  push(...raws: string[]): Promise<void> {
    if (raws.length === 0) return Promise.resolve();
    const now = Date.now();
    this.#transaction(() => {
      let position = this.#maxPosition();
      const insert = this.#sql(
        `INSERT INTO queue_jobs (queue, raw, state, position, available_at, created_at)
         VALUES (?, ?, 'ready', ?, ?, ?)`,
      );
      for (const raw of raws) insert.run(this.name, raw, ++position, now, now);
    });
    for (const wake of [...waitersOf(this.#db, this.name)]) wake();
    return Promise.resolve();
  }

  async lease(max: number, blockMs: number, signal?: AbortSignal): Promise<Lease[]> {
    const deadline = Date.now() + Math.max(0, blockMs);
    for (;;) {
      if (signal?.aborted || this.#closed) return [];
      this.#heartbeat();
      const { leases, nextDueAt } = this.#take(Math.max(1, max));
      if (leases.length > 0) return leases;
      const now = Date.now();
      if (now >= deadline) return [];
      const until = Math.min(deadline, now + this.#pollMs, nextDueAt ?? Infinity);
      await this.#wait(Math.max(1, until - now), signal);
    }
  }

  ack(leases: readonly Lease[]): Promise<void> {
    if (leases.length === 0) return Promise.resolve();
    this.#transaction(() => {
      const del = this.#sql(
        `DELETE FROM queue_jobs WHERE id = ? AND state = 'processing' AND consumer = ?`,
      );
      for (const lease of leases) del.run(Number(lease.ref), this.#consumer);
    });
    return Promise.resolve();
  }

  retry(lease: Lease, delayMs: number, options: RetryOptions = {}): Promise<void> {
    const counted = options.countAttempt === false ? 0 : 1;
    this.#transaction(() => {
      this.#sql(
        `UPDATE queue_jobs SET state = 'delayed', consumer = NULL, available_at = ?, attempts = attempts + ?
         WHERE id = ? AND state = 'processing' AND consumer = ?`,
      ).run(Date.now() + Math.max(0, delayMs), counted, Number(lease.ref), this.#consumer);
    });
    return Promise.resolve();
  }

  rewrite(lease: Lease, raw: string): Promise<Lease> {
    const changed = this.#sql(
      `UPDATE queue_jobs SET raw = ? WHERE id = ? AND state = 'processing' AND consumer = ? RETURNING id`,
    ).get(raw, Number(lease.ref), this.#consumer);
    if (changed === undefined) {
      return Promise.reject(new Error(`Cannot rewrite a job of ${this.name}: it is not leased any more`));
    }
    return Promise.resolve({ raw, attempts: lease.attempts, ref: lease.ref });
  }

  release(leases: readonly Lease[]): Promise<void> {
    if (leases.length === 0) return Promise.resolve();
    this.#transaction(() => {
      const mine = leases.map((l) => Number(l.ref)).filter((id) =>
        this.#sql(`SELECT 1 AS ok FROM queue_jobs WHERE id = ? AND state = 'processing' AND consumer = ?`)
          .get(id, this.#consumer) !== undefined
      );
      this.#putBackAtHead(mine);
    });
    for (const wake of [...waitersOf(this.#db, this.name)]) wake();
    return Promise.resolve();
  }

  deadLetter(lease: Lease | null, reason: string, raw?: string): Promise<void> {
    const job = lease?.raw ?? raw ?? "";
    const attempts = (lease?.attempts ?? 0) + (lease ? 1 : 0);
    this.#transaction(() => {
      this.#sql(`INSERT INTO queue_dead (queue, raw, reason, attempts, failed_at) VALUES (?, ?, ?, ?, ?)`)
        .run(this.name, job, reason, attempts, new Date().toISOString());
      if (lease) {
        this.#sql(`DELETE FROM queue_jobs WHERE id = ? AND state = 'processing' AND consumer = ?`)
          .run(Number(lease.ref), this.#consumer);
      }
    });
    return Promise.resolve();
  }

  recover(): Promise<number> {
    this.#heartbeat(true);
    const moved = this.#transaction(() => {
      const staleBefore = Date.now() - this.#aliveTtlMs;
      const consumers = this.#sql(
        `SELECT DISTINCT j.consumer AS consumer, c.alive_at AS alive_at FROM queue_jobs j
         LEFT JOIN queue_consumers c ON c.queue = j.queue AND c.consumer = j.consumer
         WHERE j.queue = ? AND j.state = 'processing'`,
      ).all(this.name) as { consumer: string; alive_at: number | null }[];
      let n = 0;
      for (const { consumer, alive_at } of consumers) {
        const mine = consumer === this.#consumer;
        if (!mine && alive_at !== null && alive_at >= staleBefore) continue;
        const ids = (this.#sql(
          `SELECT id FROM queue_jobs WHERE queue = ? AND state = 'processing' AND consumer = ? ORDER BY position`,
        ).all(this.name, consumer) as { id: number }[]).map((r) => r.id);
        this.#putBackAtHead(ids);
        n += ids.length;
      }
      this.#sql(`DELETE FROM queue_consumers WHERE queue = ? AND alive_at < ? AND consumer <> ?`)
        .run(this.name, staleBefore, this.#consumer);
      return n;
    });
    if (moved > 0) { for (const wake of [...waitersOf(this.#db, this.name)]) wake(); }
    return Promise.resolve(moved);
  }

  reclaim(): Promise<Reclaimed> {
    // One transaction: the liveness read and the move cannot be split by another process's
    // heartbeat or sweep (BEGIN IMMEDIATE holds the write lock).
    const result = this.#transaction(() => {
      const staleBefore = Date.now() - this.#aliveTtlMs;
      const others = this.#sql(
        `SELECT j.consumer AS consumer, c.alive_at AS alive_at, COUNT(*) AS n FROM queue_jobs j
         LEFT JOIN queue_consumers c ON c.queue = j.queue AND c.consumer = j.consumer
         WHERE j.queue = ? AND j.state = 'processing' AND j.consumer <> ? GROUP BY j.consumer`,
      ).all(this.name, this.#consumer) as { consumer: string; alive_at: number | null; n: number }[];
      const found: Reclaimed = { consumers: [], heldByOthers: 0 };
      for (const { consumer, alive_at, n } of others) {
        if (alive_at !== null && alive_at >= staleBefore) {
          found.heldByOthers += n;
          continue;
        }
        const ids = (this.#sql(
          `SELECT id FROM queue_jobs WHERE queue = ? AND state = 'processing' AND consumer = ? ORDER BY position`,
        ).all(this.name, consumer) as { id: number }[]).map((r) => r.id);
        this.#putBackAtHead(ids);
        found.consumers.push({ consumer, jobs: ids.length });
      }
      this.#sql(`DELETE FROM queue_consumers WHERE queue = ? AND alive_at < ? AND consumer <> ?`)
        .run(this.name, staleBefore, this.#consumer);
      return found;
    });
    if (result.consumers.length > 0) { for (const wake of [...waitersOf(this.#db, this.name)]) wake(); }
    return Promise.resolve(result);
  }

  depth(): Promise<QueueDepth> {
    const depth: QueueDepth = { ready: 0, processing: 0, delayed: 0, dead: 0 };
    const rows = this.#sql(`SELECT state, COUNT(*) AS n FROM queue_jobs WHERE queue = ? GROUP BY state`)
      .all(this.name) as { state: keyof QueueDepth; n: number }[];
    for (const { state, n } of rows) depth[state] = n;
    depth.dead = (this.#sql(`SELECT COUNT(*) AS n FROM queue_dead WHERE queue = ?`).get(this.name) as {
      n: number;
    }).n;
    return Promise.resolve(depth);
  }

  deadLetters(limit = 100, offset = 0): Promise<DeadLetter[]> {
    const rows = this.#sql(
      `SELECT id, raw, reason, attempts, failed_at FROM queue_dead WHERE queue = ? ORDER BY id LIMIT ? OFFSET ?`,
    ).all(this.name, limit, offset) as {
      id: number;
      raw: string;
      reason: string;
      attempts: number;
      failed_at: string;
    }[];
    return Promise.resolve(
      rows.map((r) => ({
        id: String(r.id),
        job: r.raw,
        reason: r.reason,
        attempts: r.attempts,
        failed_at: r.failed_at,
      })),
    );
  }

  replayDeadLetters(ids?: readonly string[]): Promise<number> {
    const n = this.#onDead(true, ids);
    if (n > 0) { for (const wake of [...waitersOf(this.#db, this.name)]) wake(); }
    return Promise.resolve(n);
  }

  discardDeadLetters(ids?: readonly string[]): Promise<number> {
    return Promise.resolve(this.#onDead(false, ids));
  }

  /** Takes the dead letters named (or all), in their order; replayed ones go to the tail as new jobs. */
  #onDead(replay: boolean, ids?: readonly string[]): number {
    if (ids && ids.length === 0) return 0;
    return this.#transaction(() => {
      const rows = (ids
        ? ids.map((id) =>
          this.#sql(`SELECT id, raw FROM queue_dead WHERE queue = ? AND id = ?`).get(this.name, Number(id))
        ).filter((r) =>
          r !== undefined
        )
        : this.#sql(`SELECT id, raw FROM queue_dead WHERE queue = ? ORDER BY id`).all(this.name)) as {
          id: number;
          raw: string;
        }[];
      rows.sort((a, b) => a.id - b.id);
      const now = Date.now();
      let position = this.#maxPosition();
      const insert = this.#sql(
        `INSERT INTO queue_jobs (queue, raw, state, position, available_at, created_at)
         VALUES (?, ?, 'ready', ?, ?, ?)`,
      );
      const remove = this.#sql(`DELETE FROM queue_dead WHERE id = ?`);
      for (const r of rows) {
        if (replay) insert.run(this.name, r.raw, ++position, now, now);
        remove.run(r.id);
      }
      return rows.length;
    });
  }

  ping(): Promise<void> {
    this.#sql("SELECT 1 AS ok").get();
    return Promise.resolve();
  }

  /**
   * Ends a pending lease, stops leasing and stops the liveness refresh; the connection belongs to
   * the caller, so acks of a batch in hand still work. Leased jobs that are never acked stay for
   * `recover()` or, once the liveness lapses, another consumer's `reclaim()`. `handBack` changes
   * nothing here: the embedded queue belongs to one process, which recovers it.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearInterval(this.#aliveTimer);
      this.#aliveTimer = undefined;
      for (const wake of [...this.#wakeOnClose]) wake();
    }
    return Promise.resolve();
  }

  /** One lease transaction: due retries go to the tail, then up to `max` ready rows become ours. */
  #take(max: number): { leases: Lease[]; nextDueAt?: number } {
    return this.#transaction(() => {
      const now = Date.now();
      const due = this.#sql(
        `SELECT id FROM queue_jobs WHERE queue = ? AND state = 'delayed' AND available_at <= ?
         ORDER BY available_at, id LIMIT ${PROMOTE_BATCH}`,
      ).all(this.name, now) as { id: number }[];
      if (due.length > 0) {
        let position = this.#maxPosition();
        const promote = this.#sql(`UPDATE queue_jobs SET state = 'ready', position = ? WHERE id = ?`);
        for (const { id } of due) promote.run(++position, id);
      }
      const rows = this.#sql(
        `SELECT id, raw, attempts FROM queue_jobs WHERE queue = ? AND state = 'ready' ORDER BY position LIMIT ?`,
      ).all(this.name, max) as { id: number; raw: string; attempts: number }[];
      if (rows.length > 0) {
        const mark = this.#sql(`UPDATE queue_jobs SET state = 'processing', consumer = ? WHERE id = ?`);
        for (const r of rows) mark.run(this.#consumer, r.id);
        return { leases: rows.map((r) => ({ raw: r.raw, attempts: r.attempts, ref: String(r.id) })) };
      }
      const next = this.#sql(
        `SELECT MIN(available_at) AS at FROM queue_jobs WHERE queue = ? AND state = 'delayed'`,
      ).get(this.name) as { at: number | null };
      return { leases: [], nextDueAt: next.at ?? undefined };
    });
  }

  /** Makes rows ready before every other ready row, keeping their order. Inside a transaction. */
  #putBackAtHead(ids: readonly number[]): void {
    if (ids.length === 0) return;
    const head = (this.#sql(
      `SELECT MIN(position) AS p FROM queue_jobs WHERE queue = ? AND state = 'ready'`,
    ).get(this.name) as { p: number | null }).p ?? this.#maxPosition() + 1;
    const put = this.#sql(
      `UPDATE queue_jobs SET state = 'ready', consumer = NULL, position = ?, available_at = ? WHERE id = ?`,
    );
    const now = Date.now();
    ids.forEach((id, i) => put.run(head - ids.length + i, now, id));
  }

  #maxPosition(): number {
    return (this.#sql(`SELECT MAX(position) AS p FROM queue_jobs WHERE queue = ?`).get(this.name) as {
      p: number | null;
    }).p ?? 0;
  }

  #heartbeat(force = false): void {
    const now = Date.now();
    if (!force && now - this.#aliveAt < this.#aliveTtlMs / 3) return;
    this.#aliveAt = now;
    this.#sql(
      `INSERT INTO queue_consumers (queue, consumer, alive_at) VALUES (?, ?, ?)
       ON CONFLICT (queue, consumer) DO UPDATE SET alive_at = excluded.alive_at`,
    ).run(this.name, this.#consumer, now);
    this.#keepAlive();
  }

  /**
   * From the first heartbeat on this handle is a consumer, alive while open whatever its traffic
   * (a job held for minutes, an idle list): a timer refreshes it every third of the TTL until
   * `close()`, unref'd. A failed refresh (the file busy past `busy_timeout`) waits for the next tick.
   */
  #keepAlive(): void {
    if (this.#aliveTimer !== undefined || this.#closed) return;
    this.#aliveTimer = setInterval(() => {
      try {
        this.#heartbeat(true);
      } catch {
        // the next tick tries again
      }
    }, Math.max(1, Math.floor(this.#aliveTtlMs / 3)));
    Deno.unrefTimer(this.#aliveTimer);
  }

  /** Resolves after `ms`, or earlier on a push in this process, on close, or on abort. */
  #wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const set = waitersOf(this.#db, this.name);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        this.#wakeOnClose.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      this.#wakeOnClose.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  #transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // the failed statement may already have ended the transaction
      }
      throw error;
    }
  }

  #sql(text: string): StatementSync {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.#db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }
}

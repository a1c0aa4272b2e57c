/**
 * @module reliable_queue
 * The queue interface shared by the Redis lists (production) and the embedded SQLite table.
 * Delivery is at least once: a job leased by a consumer that dies is put back, by `reclaim()` of
 * any other consumer once the dead one's liveness has lapsed, or by `recover()` at its next start.
 *
 * Liveness: a handle that has leased (or recovered, or handed off) is a consumer, and while it is
 * open a timer refreshes its liveness every third of the TTL, whether or not it does anything
 * else: a consumer busy with one long job, or idle, is never taken for dead. `close()` stops it.
 */

/** One job taken from the queue; hand it back with `ack`, `retry`, `release` or `deadLetter`. */
export interface Lease {
  /** The element exactly as it was pushed (the contract's JSON for the incoming queue). */
  readonly raw: string;
  /** How many earlier attempts failed (0 on first delivery). */
  readonly attempts: number;
  /** Implementation detail that identifies this lease. */
  readonly ref: string;
}

export interface QueueDepth {
  ready: number;
  processing: number;
  delayed: number;
  dead: number;
}

export interface DeadLetter {
  /** Names this entry for {@link ReliableQueue.replayDeadLetters} / `discardDeadLetters`. */
  id: string;
  job: string;
  reason: string;
  attempts: number;
  failed_at: string;
}

/** A Redis key and the value it must hold (the downlink lock's owner) for a hand-off to go through. */
export interface QueueFence {
  key: string;
  value: string;
}

/** What {@link ReliableQueue.reclaim} found. */
export interface Reclaimed {
  /** The consumers found dead whose jobs went back to the head of the list, with how many each. */
  consumers: { consumer: string; jobs: number }[];
  /** Jobs other consumers, alive, hold now (leased, or moved by a blocking wait): left alone. */
  heldByOthers: number;
}

export interface RetryOptions {
  /** Transient infrastructure failures (database down) do not use up the job's attempts. */
  countAttempt?: boolean;
  error?: string;
}

export interface ReliableQueue {
  readonly name: string;
  /** Appends jobs at the tail, in order. Resolves once they are stored. */
  push(...raws: string[]): Promise<void>;
  /** Waits up to `blockMs` for a job, then takes up to `max` at once. `[]` on timeout or abort. */
  lease(max: number, blockMs: number, signal?: AbortSignal): Promise<Lease[]>;
  ack(leases: readonly Lease[]): Promise<void>;
  /** Takes the job out of processing and makes it ready again after `delayMs`. */
  retry(lease: Lease, delayMs: number, options?: RetryOptions): Promise<void>;
  /** Puts jobs back at the head at once, without counting an attempt (used on shutdown). */
  release(leases: readonly Lease[]): Promise<void>;
  /** Moves a leased job (or, with `lease` null, a raw message that never became a job) to the dead letters. */
  deadLetter(lease: Lease | null, reason: string, raw?: string): Promise<void>;
  /**
   * Replaces a leased job's element with `raw`; the job stays leased, and from now on a
   * `release` or a restart's `recover()` puts back the new element. Returns the lease to use.
   */
  rewrite(lease: Lease, raw: string): Promise<Lease>;
  /**
   * Optional hand-off: when no job waits in the queue (and `fence` holds), stores `raws` already
   * leased to this consumer and returns their leases, in order, after any job the consumer's own
   * waiting lease had just taken; otherwise appends them like `push` (with `append: false`,
   * writes nothing) and returns null.
   */
  pushLeased?(
    raws: readonly string[],
    fence?: QueueFence,
    options?: { append?: boolean },
  ): Promise<Lease[] | null>;
  /** Optional: makes a waiting `lease` of this consumer return at once. */
  interrupt?(): void;
  /**
   * At start only: puts back the jobs of dead consumers and this consumer's own, from an earlier
   * run under the same id (taking its own later would take what it holds now).
   */
  recover(): Promise<number>;
  /**
   * The periodic sweep: puts back, at the head of the list and in their order, the jobs of every
   * consumer whose liveness has lapsed, never this consumer's own nor a live one's. Each dead
   * consumer's jobs move in one atomic step that checks its liveness again, so sweeps of several
   * processes at once move each job once, and a consumer that came back meanwhile keeps its jobs.
   */
  reclaim(): Promise<Reclaimed>;
  depth(): Promise<QueueDepth>;
  /** The dead letters, oldest first, from `offset`. */
  deadLetters(limit?: number, offset?: number): Promise<DeadLetter[]>;
  /**
   * Puts dead letters back at the tail of the queue as new jobs (attempts start again) and removes
   * them from the dead letters: those named by `ids`, or every one when `ids` is undefined.
   * Returns how many were replayed (an id no longer there is skipped).
   */
  replayDeadLetters(ids?: readonly string[]): Promise<number>;
  /** Removes dead letters for good: those named by `ids`, or every one. Returns how many. */
  discardDeadLetters(ids?: readonly string[]): Promise<number>;
  ping(): Promise<void>;
  /**
   * Releases this handle. `handBack`: this consumer id will not come back (a drained, scaled-in
   * gateway), so its unfinished leases go back to the list now instead of at its next start.
   */
  close(options?: { handBack?: boolean }): Promise<void>;
}

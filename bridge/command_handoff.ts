/**
 * @module command_handoff
 * The API's fast lane to the downlink of the same process. When this process holds the downlink
 * lock and nothing waits in the outgoing list, the intake's push puts the commands straight into
 * the downlink's processing list (one Redis script, fenced by the lock: see
 * {@link ReliableQueue.pushLeased}) and hands their leases, with the rows it has just stored, to
 * the downlink loop in memory. That saves a wake-up, a take and a `SELECT` per batch, and keeps
 * every guarantee of the list: the leases are in the consumer's processing list, so a crash puts
 * them back; only the lock holder takes them; what was already waiting goes first. Otherwise the
 * push is a plain `RPUSH`, the path a Laravel producer's commands take.
 */
import type { CommandRecord } from "../db/store.ts";
import type { Lease, QueueFence, ReliableQueue } from "../queue/reliable_queue.ts";

/** Leases handed over together; `records` holds the rows stored just now, by element. */
export interface HandoffBatch {
  leases: Lease[];
  records: Map<string, CommandRecord>;
}

interface Consumer {
  queue: ReliableQueue;
  fence?: () => QueueFence | undefined;
}

export class CommandHandoff {
  #consumer?: Consumer;
  #batches: HandoffBatch[] = [];
  #pending = 0;
  /** Hand-offs on their way to Redis. */
  readonly #inProgress = new Set<Promise<unknown>>();
  /** Leases whose hand-off came back after `detach` began. */
  #orphans: Lease[] = [];

  /** `maxPending`: leases waiting for the downlink beyond which pushes take the plain path. */
  constructor(readonly maxPending = 1000) {}

  /** The downlink consumes through `queue` (and holds the lock) from now on. */
  attach(queue: ReliableQueue, fence?: () => QueueFence | undefined): void {
    this.#consumer = { queue, fence };
  }

  /**
   * The downlink stops taking hand-offs: once those on their way are back, returns every lease
   * handed over and not taken, in order, for the downlink to hand back with its own.
   */
  async detach(): Promise<Lease[]> {
    this.#consumer = undefined;
    while (this.#inProgress.size > 0) await Promise.allSettled([...this.#inProgress]);
    const left = [...this.#batches.flatMap((b) => b.leases), ...this.#orphans];
    this.#batches = [];
    this.#orphans = [];
    this.#pending = 0;
    return left;
  }

  /**
   * Pushes `raws` (`records[i]` is the row just stored for `raws[i]`, if any): handed to the
   * downlink when it can take them, else appended with `fallback.push`.
   */
  async push(
    fallback: Pick<ReliableQueue, "push">,
    raws: string[],
    records: (CommandRecord | undefined)[],
  ): Promise<void> {
    const consumer = this.#consumer;
    const fence = consumer?.fence?.();
    if (!consumer?.queue.pushLeased || this.#pending >= this.maxPending || (consumer.fence && !fence)) {
      return await fallback.push(...raws);
    }
    const handing = consumer.queue.pushLeased(raws, fence);
    this.#inProgress.add(handing);
    let leases: Lease[] | null;
    try {
      leases = await handing;
    } finally {
      this.#inProgress.delete(handing);
    }
    if (leases === null) return; // appended: something was waiting, or the lock moved on
    if (this.#consumer !== consumer) {
      // Detached meanwhile (shutdown, lock lost): the downlink hands them back with its own.
      this.#orphans.push(...leases);
      return;
    }
    const byRaw = new Map<string, CommandRecord>();
    raws.forEach((raw, i) => records[i] && byRaw.set(raw, records[i]));
    this.#batches.push({ leases, records: byRaw });
    this.#pending += leases.length;
    consumer.queue.interrupt?.();
  }

  /** What was handed over, oldest first, in whole hand-offs of about `max` leases at most; or undefined. */
  take(max: number): HandoffBatch | undefined {
    const first = this.#batches.shift();
    if (!first) return undefined;
    const batch = { leases: [...first.leases], records: new Map(first.records) };
    while (this.#batches.length > 0 && batch.leases.length + this.#batches[0]!.leases.length <= max) {
      const more = this.#batches.shift()!;
      batch.leases.push(...more.leases);
      for (const [raw, row] of more.records) batch.records.set(raw, row);
    }
    this.#pending -= batch.leases.length;
    return batch;
  }

  /** A downlink takes hand-offs now. */
  get attached(): boolean {
    return this.#consumer !== undefined;
  }

  get pending(): number {
    return this.#pending;
  }
}

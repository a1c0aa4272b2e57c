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

function byRaw(raws: string[], records: (CommandRecord | undefined)[]): Map<string, CommandRecord> {
  const map = new Map<string, CommandRecord>();
  raws.forEach((raw, i) => records[i] && map.set(raw, records[i]));
  return map;
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

  /** The consumer and fence to hand over to now, or undefined when pushes take the plain way. */
  #ready(): { consumer: Consumer; fence?: QueueFence } | undefined {
    const consumer = this.#consumer;
    if (!consumer?.queue.pushLeased || this.#pending >= this.maxPending) return undefined;
    const fence = consumer.fence?.();
    if (consumer.fence && !fence) return undefined; // the lock may have moved on
    return { consumer, fence };
  }

  /** Whether a push now would try the hand-off. */
  get ready(): boolean {
    return this.#ready() !== undefined;
  }

  /** Runs `work` counted as on its way (`detach` waits for it). */
  async #track<T>(work: Promise<T>): Promise<T> {
    this.#inProgress.add(work);
    try {
      return await work;
    } finally {
      this.#inProgress.delete(work);
    }
  }

  /** Hands `leases` to the downlink, or to `detach` if it let go meanwhile. */
  #deliver(consumer: Consumer, leases: Lease[], records: Map<string, CommandRecord>): void {
    if (leases.length === 0) return;
    if (this.#consumer !== consumer) {
      // Detached meanwhile (shutdown, lock lost): the downlink hands them back with its own.
      this.#orphans.push(...leases);
      return;
    }
    this.#batches.push({ leases, records });
    this.#pending += leases.length;
    consumer.queue.interrupt?.();
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
    const to = this.#ready();
    if (!to) return await fallback.push(...raws);
    const leases = await this.#track(to.consumer.queue.pushLeased!(raws, to.fence));
    if (leases === null) return; // appended: something was waiting, or the lock moved on
    this.#deliver(to.consumer, leases, byRaw(raws, records));
  }

  /**
   * Stores and hands over side by side: while `store` writes the rows, the raws are leased to the
   * downlink if it can take them now (never appended: an element must not be published before
   * its row is stored). `rowsOf` names, per raw, the row stored for it; a raw leased without one
   * is taken out of the queue again, never published. `taken` false: nothing was written to the
   * queue, push them the plain way.
   */
  async storeWhileLeasing<T>(
    raws: string[],
    store: () => Promise<T>,
    rowsOf: (stored: T) => (CommandRecord | undefined)[],
  ): Promise<{ stored: T; taken: boolean }> {
    const to = this.#ready();
    if (!to) return { stored: await store(), taken: false };
    // An unknown outcome counts as not taken: a copy it may have left in our processing list goes
    // back to the list later and finds its row already sent (or failed), and is not sent again.
    const leasing = to.consumer.queue.pushLeased!(raws, to.fence, { append: false }).catch(() => null);
    return await this.#track((async () => {
      let stored: T;
      try {
        stored = await store();
      } catch (error) {
        const leases = await leasing;
        if (leases) await this.#deliverStored(to.consumer, leases, new Set(raws), new Map());
        throw error;
      }
      const leases = await leasing;
      if (leases === null) return { stored, taken: false };
      await this.#deliverStored(to.consumer, leases, new Set(raws), byRaw(raws, rowsOf(stored)));
      return { stored, taken: true };
    })());
  }

  /** Delivers `leases` but those of `mine` without a row, which are acked (taken out) instead. */
  async #deliverStored(
    consumer: Consumer,
    leases: Lease[],
    mine: Set<string>,
    records: Map<string, CommandRecord>,
  ): Promise<void> {
    const unstored = leases.filter((l) => mine.has(l.raw) && !records.has(l.raw));
    this.#deliver(consumer, leases.filter((l) => !mine.has(l.raw) || records.has(l.raw)), records);
    // If this fails, the element goes back to the list one day and, as the API's without a row,
    // is marked failed instead of published (see the downlink).
    if (unstored.length > 0) await consumer.queue.ack(unstored).catch(() => {});
  }

  /** What was handed over, oldest first, in whole hand-offs of about `max` leases at most; or undefined. */
  take(max: number): HandoffBatch | undefined {
    // The batches are this object's own (made in #deliver): the first takes in the ones that fit.
    const batch = this.#batches.shift();
    if (!batch) return undefined;
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

/**
 * @module push_batcher
 * Group commit for queue pushes: a push goes out at once while fewer than `maxInFlight` are in
 * flight; beyond that, pushes wait and leave together in the next single `push(...raws)`. An idle
 * gateway pays no added latency, a busy one sends one RPUSH for many messages instead of one each
 * (the per-command cost of the Redis client was most of the uplink's CPU per message), and a slow
 * round trip does not cap the rate at one batch per round trip. Redis runs the pushes of one
 * connection in the order they were sent. Each caller's promise settles with the push that
 * carried its element, so a PUBACK still follows its own stored job.
 */
import type { ReliableQueue } from "../queue/reliable_queue.ts";

interface Pending {
  raw: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class PushBatcher {
  #waiting: Pending[] = [];
  #inFlight = 0;

  /** `maxBatch` bounds one push, so a burst does not become one huge command. */
  constructor(
    readonly queue: Pick<ReliableQueue, "push">,
    readonly maxBatch = 1000,
    readonly maxInFlight = 4,
  ) {}

  push(raw: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ raw, resolve, reject });
      if (this.#inFlight < this.maxInFlight) this.#flush();
    });
  }

  #flush(): void {
    const batch = this.#waiting.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    this.#inFlight++;
    this.queue.push(...batch.map((p) => p.raw)).then(
      () => {
        for (const p of batch) p.resolve();
      },
      (error) => {
        for (const p of batch) p.reject(error);
      },
    ).finally(() => {
      this.#inFlight--;
      this.#flush();
    });
  }
}

/**
 * @module reclaimer
 * The sweep that keeps a gateway gone for good (killed, its pod rescheduled under a new name) from
 * stranding the jobs it had leased: every live process runs one per queue it consumes, and puts
 * back at the head of the list the jobs of consumers whose liveness has lapsed
 * ({@link ReliableQueue.reclaim}). Never its own or a live consumer's, so it may run all the time
 * and in every process at once. One warning line per dead consumer, and a counter.
 */
import { getLogger } from "@logtape/logtape";
import type { Metrics } from "../lib/metrics.ts";
import { sleep } from "../lib/sleep.ts";
import type { Reclaimed, ReliableQueue } from "./reliable_queue.ts";

const log = getLogger(["gateway", "queue"]);

export class Reclaimer {
  readonly #queue: ReliableQueue;
  readonly #metrics?: Metrics;

  constructor(queue: ReliableQueue, metrics?: Metrics) {
    this.#queue = queue;
    this.#metrics = metrics;
  }

  /** One sweep; throws if the queue cannot be reached. */
  async sweep(): Promise<Reclaimed> {
    const queue = this.#queue.name;
    const reclaimed = await this.#queue.reclaim();
    for (const { consumer, jobs } of reclaimed.consumers) {
      if (jobs === 0) continue;
      this.#metrics?.reclaimed.inc({ queue }, jobs);
      log.warn("Put back {count} jobs of {queue} held by consumer {consumer}, which is gone", {
        count: jobs,
        queue,
        consumer,
      });
    }
    return reclaimed;
  }

  /**
   * Sweeps every `everyMs` (each wait drawn between half and all of it, so the processes of a
   * fleet do not sweep in step) until `signal` aborts, without waiting for a sweep that Redis
   * holds up then. A failed sweep is logged; the next one finds what it left.
   */
  async run(everyMs: number, signal: AbortSignal): Promise<void> {
    let stop = () => {};
    const stopped = new Promise<void>((resolve) => stop = resolve);
    signal.addEventListener("abort", stop, { once: true });
    let failing = false;
    try {
      while (!signal.aborted) {
        await sleep(everyMs * (0.5 + Math.random() / 2), signal);
        if (signal.aborted) break;
        const sweep = this.sweep();
        sweep.catch(() => {}); // still pending after an abort: nobody waits for it
        try {
          await Promise.race([sweep, stopped]);
          failing = false;
        } catch (error) {
          // Once per outage: the queue's own users report it too.
          if (!failing) {
            log.warn("Cannot sweep {queue} for dead consumers: {error}", { queue: this.#queue.name, error });
          }
          failing = true;
        }
      }
    } finally {
      signal.removeEventListener("abort", stop);
    }
  }
}

/**
 * @module worker
 * The job loop: lease a batch from the incoming queue, dispatch it, then ack, retry with backoff,
 * or dead-letter each job. A failure while the database is unreachable is transient: the job is
 * handed back without using up an attempt and the loop waits, so an outage dead-letters nothing.
 */
import { getLogger } from "@logtape/logtape";
import { isConnectionError } from "../db/connection_error.ts";
import type { Store } from "../db/store.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../lib/metrics.ts";
import { backoffDelay } from "../lib/backoff_delay.ts";
import type { Lease, ReliableQueue } from "../queue/reliable_queue.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { JobContext } from "./job_handler.ts";

const log = getLogger(["gateway", "worker"]);

export interface WorkerOptions {
  queue: ReliableQueue;
  dispatcher: Dispatcher;
  ctx: JobContext;
  store: Store;
  batchSize: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** How long one lease call blocks waiting for work. */
  blockMs?: number;
  metrics?: Metrics;
  signal: AbortSignal;
}

/** Runs until `signal` aborts; the batch in hand is finished and acked before it returns. */
export async function runWorker(o: WorkerOptions): Promise<void> {
  const recovered = await o.queue.recover();
  if (recovered > 0) {
    log.info("Put back {count} jobs left unfinished by a stopped worker", { count: recovered });
  }
  let outage = 0;
  while (!o.signal.aborted) {
    let leases: Lease[];
    try {
      leases = await o.queue.lease(o.batchSize, o.blockMs ?? 1000, o.signal);
      outage = 0;
    } catch (error) {
      if (o.signal.aborted) break;
      outage++;
      log.error("Cannot lease jobs from {queue}: {error}", { queue: o.queue.name, error });
      await sleep(backoffDelay(outage, o.retryBaseMs, o.retryMaxMs), o.signal);
      continue;
    }
    if (leases.length === 0) continue;
    const dbDown = await processBatch(o, leases);
    if (dbDown > 0) await sleep(dbDown, o.signal);
  }
}

/** Returns how long to pause when the database is down, else 0. */
export async function processBatch(o: Omit<WorkerOptions, "signal">, leases: Lease[]): Promise<number> {
  const started = performance.now();
  const outcomes = await o.dispatcher.run(leases, o.ctx);
  const elapsed = (performance.now() - started) / 1000;
  for (const type of new Set(outcomes.map((x) => x.type))) o.metrics?.jobDuration.observe({ type }, elapsed);

  const done = outcomes.filter((x) => x.status === "done");
  await o.queue.ack(done.map((x) => x.lease));
  for (const x of done) o.metrics?.jobs.inc({ type: x.type, outcome: "done" });

  let pause = 0;
  let dbReachable: boolean | undefined;
  for (const x of outcomes) {
    if (x.status === "invalid") {
      log.warn("Dead-lettering a job: {reason}", { reason: x.reason });
      await o.queue.deadLetter(x.lease, x.reason);
      o.metrics?.jobs.inc({ type: x.type, outcome: "dead" });
      o.metrics?.deadLettered.inc({ queue: o.queue.name });
    } else if (x.status === "failed") {
      const message = x.error instanceof Error ? x.error.message : String(x.error);
      // A lost or refused connection is transient even if the database is back by now.
      const transient = isConnectionError(x.error) ||
        !(dbReachable ??= await o.store.ping().then(() => true, () => false));
      if (transient) {
        pause = Math.max(pause, o.retryBaseMs);
        await o.queue.retry(x.lease, o.retryBaseMs, { countAttempt: false, error: message });
        o.metrics?.jobs.inc({ type: x.type, outcome: "retried" });
        continue;
      }
      const attempt = x.lease.attempts + 1;
      if (attempt >= o.maxAttempts) {
        const reason = `${x.type} job failed ${attempt} times; last error: ${message}`;
        log.error("Dead-lettering a job: {reason}", { reason });
        await o.queue.deadLetter(x.lease, reason);
        o.metrics?.jobs.inc({ type: x.type, outcome: "dead" });
        o.metrics?.deadLettered.inc({ queue: o.queue.name });
      } else {
        const delay = backoffDelay(attempt, o.retryBaseMs, o.retryMaxMs);
        log.warn("A {type} job failed (attempt {attempt}), retrying in {delay} ms: {message}", {
          type: x.type,
          attempt,
          delay,
          message,
        });
        await o.queue.retry(x.lease, delay, { error: message });
        o.metrics?.jobs.inc({ type: x.type, outcome: "retried" });
      }
    }
  }
  if (pause > 0) log.error("The database is unreachable; jobs wait and retry");
  return pause;
}

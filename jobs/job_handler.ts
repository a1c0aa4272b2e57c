/**
 * @module job_handler
 * The shape every job type file exports: its payload schema and a typed handler. Handlers take a
 * batch, so a burst of heartbeats becomes one upsert; the dispatcher retries a failed batch job by
 * job to isolate the one that fails.
 */
import type { z } from "zod";
import type { Store } from "../db/store.ts";
import type { Metrics } from "../lib/metrics.ts";

export interface Job<T> {
  serialNo: string;
  receivedAt: Date;
  payload: T;
}

export interface Alert {
  serialNo: string;
  code: string;
  level: string;
  message: string;
  receivedAt: Date;
}

export interface JobContext {
  store: Store;
  /** Raises an alert; never throws (a failing webhook is logged, not retried as the job). */
  alert(alert: Alert): void;
  /** The gateway's metrics, for handlers that count outcomes (e.g. command statuses). */
  metrics?: Metrics;
}

export interface JobHandler<T = unknown> {
  readonly type: string;
  readonly schema: z.ZodType<T>;
  handle(jobs: Job<T>[], ctx: JobContext): Promise<void>;
}

/** Keeps `T` attached to the schema while the dispatcher holds handlers of many types. */
export function defineJob<T>(handler: JobHandler<T>): JobHandler<unknown> {
  return handler as unknown as JobHandler<unknown>;
}

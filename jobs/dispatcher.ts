/**
 * @module dispatcher
 * Maps a job's `type` to its handler. Parses each leased element against the contract and the
 * type's schema, runs each type's jobs as one batch (the types side by side, each on its own
 * database connection, so a batch takes as long as its slowest type rather than the sum), and,
 * when a batch fails, runs its jobs one by one so that a single bad job cannot hold back the rest.
 * A job the database refuses as data ({@link isDataError}) is dead-lettered at once, like one that
 * fails its schema.
 */
import { isConnectionError } from "../db/connection_error.ts";
import { isDataError } from "../db/data_error.ts";
import { describeIssues } from "../lib/describe_issues.ts";
import type { Lease } from "../queue/reliable_queue.ts";
import { type BridgePayload, bridgePayloadSchema } from "../contract/incoming_job.ts";
import type { Job, JobContext, JobHandler } from "./job_handler.ts";

export type Outcome =
  | { lease: Lease; type: string; status: "done" }
  /** Can never succeed: dead-letter now. */
  | { lease: Lease; type: string; status: "invalid"; reason: string }
  /** Failed this time: retry later. */
  | { lease: Lease; type: string; status: "failed"; error: unknown };

/**
 * A job that failed alone: the database refusing its data (a value the schemas let through but a
 * column cannot hold) will refuse it every time, so it is dead-lettered at once; anything else is
 * retried.
 */
function failed(g: { lease: Lease; job: Job<unknown> }, type: string, error: unknown): Outcome {
  if (!isDataError(error)) return { lease: g.lease, type, status: "failed", error };
  const message = error instanceof Error ? error.message : String(error);
  return {
    lease: g.lease,
    type,
    status: "invalid",
    reason: `The database refuses ${type} from ${g.job.serialNo}: ${message}`,
  };
}

export class Dispatcher {
  readonly #handlers = new Map<string, JobHandler>();

  constructor(handlers: readonly JobHandler[]) {
    for (const h of handlers) this.#handlers.set(h.type, h);
  }

  get types(): string[] {
    return [...this.#handlers.keys()];
  }

  async run(leases: readonly Lease[], ctx: JobContext): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    const groups = new Map<JobHandler, { lease: Lease; job: Job<unknown> }[]>();
    for (const lease of leases) {
      const parsed = this.#parse(lease);
      if ("reason" in parsed) {
        outcomes.push({ lease, type: parsed.type, status: "invalid", reason: parsed.reason });
        continue;
      }
      const group = groups.get(parsed.handler) ?? [];
      group.push({ lease, job: parsed.job });
      groups.set(parsed.handler, group);
    }
    const results = await Promise.all(
      [...groups].map(([handler, group]) => this.#runGroup(handler, group, ctx)),
    );
    for (const result of results) outcomes.push(...result);
    return outcomes;
  }

  async #runGroup(
    handler: JobHandler,
    group: readonly { lease: Lease; job: Job<unknown> }[],
    ctx: JobContext,
  ): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    try {
      await handler.handle(group.map((g) => g.job), ctx);
      for (const g of group) outcomes.push({ lease: g.lease, type: handler.type, status: "done" });
      return outcomes;
    } catch (batchError) {
      // Database unreachable: trying each job alone would only wait out one connect timeout
      // after another (minutes for a batch) before the worker can hand the jobs back.
      if (group.length === 1 || isConnectionError(batchError)) {
        for (const g of group) outcomes.push(failed(g, handler.type, batchError));
        return outcomes;
      }
    }
    for (const g of group) {
      try {
        await handler.handle([g.job], ctx);
        outcomes.push({ lease: g.lease, type: handler.type, status: "done" });
      } catch (error) {
        outcomes.push(failed(g, handler.type, error));
      }
    }
    return outcomes;
  }

  #parse(lease: Lease): { handler: JobHandler; job: Job<unknown> } | { type: string; reason: string } {
    let envelope: BridgePayload;
    try {
      const result = bridgePayloadSchema.safeParse(JSON.parse(lease.raw));
      if (!result.success) {
        return { type: "unknown", reason: `Cannot parse job: ${describeIssues(result.error)}` };
      }
      envelope = result.data;
    } catch (error) {
      return { type: "unknown", reason: `Cannot parse job: ${(error as Error).message}` };
    }
    const handler = this.#handlers.get(envelope.type);
    if (!handler) {
      return {
        type: envelope.type,
        reason: `No handler for job type "${envelope.type}" from ${envelope.serial_no}`,
      };
    }
    const payload = handler.schema.safeParse(envelope.payload);
    if (!payload.success) {
      return {
        type: envelope.type,
        reason: `Cannot parse ${envelope.type} from ${envelope.serial_no}: ${describeIssues(payload.error)}`,
      };
    }
    return {
      handler,
      job: {
        serialNo: envelope.serial_no,
        receivedAt: new Date(envelope.received_at),
        payload: payload.data,
      },
    };
  }
}

/**
 * @module context
 * What every benchmark scenario shares: the private broker, the shared Redis (with key names of
 * this run only), a fresh database `gw_bench_<run>`, the gateway's environment, the sizes of this
 * run (full or smoke), and small helpers to wait on the gateway's progress.
 */
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { binaryAsText } from "../../db/mysql/binary_as_text.ts";
import type { GatewayProcess, Scrape } from "./gateway_process.ts";
import type { Mosquitto } from "./services.ts";

export interface Sizes {
  /** Messages of the ceiling and throughput runs. */
  blastMessages: number;
  blastMachines: number;
  inflight: number;
  redisPushes: number;
  dbRows: number;
  drainHeartbeats: number;
  drainTransactions: number;
  rateSeconds: number;
  rate: number;
  stressMachines: number;
  stressPerMachine: number;
  downlinkMachines: number;
  downlinkRate: number;
  downlinkSeconds: number;
  scaleMachines: number;
  scaleSeconds: number;
  connectRate: number;
  /** Scenario 7 (1, 2, 3 gateway processes): messages per run, and machines. */
  gatewaysMessages: number;
  gatewaysMachines: number;
}

export const FULL: Sizes = {
  blastMessages: 200_000,
  blastMachines: 2000,
  inflight: 10,
  redisPushes: 300_000,
  dbRows: 200_000,
  drainHeartbeats: 300_000,
  drainTransactions: 150_000,
  rateSeconds: 20,
  rate: 5000,
  stressMachines: 500,
  stressPerMachine: 40,
  downlinkMachines: 1000,
  downlinkRate: 1000,
  downlinkSeconds: 10,
  scaleMachines: 10_000,
  scaleSeconds: 30,
  connectRate: 1000,
  gatewaysMessages: 100_000,
  gatewaysMachines: 1000,
};

/** About ten seconds of measuring in all: CI checks that the suite runs, not how fast. */
export const SMOKE: Sizes = {
  blastMessages: 3000,
  blastMachines: 100,
  inflight: 10,
  redisPushes: 5000,
  dbRows: 5000,
  drainHeartbeats: 3000,
  drainTransactions: 2000,
  rateSeconds: 2,
  rate: 500,
  stressMachines: 50,
  stressPerMachine: 10,
  downlinkMachines: 20,
  downlinkRate: 50,
  downlinkSeconds: 1,
  scaleMachines: 200,
  scaleSeconds: 2,
  connectRate: 1000,
  gatewaysMessages: 1500,
  gatewaysMachines: 30,
};

export interface Figure {
  metric: string;
  value: number;
  unit: string;
  /** A throughput: also printed as a share of the lowest ceiling. */
  rate?: boolean;
}

export interface ScenarioResult {
  name: string;
  title: string;
  figures: Figure[];
  notes: string[];
  skipped?: string;
  /** Time series and raw facts, written to the JSON only. */
  data?: Record<string, unknown>;
}

export interface BenchContext {
  runId: string;
  smoke: boolean;
  sizes: Sizes;
  mosquitto: Mosquitto;
  redisUrl: string;
  redis: Redis;
  databaseUrl: string;
  dbName: string;
  db: mysql.Pool;
  /** Gateway tuning under test (WORKER_BATCH_SIZE, …), from `--env`. */
  gatewayOverrides: Record<string, string>;
  signal: AbortSignal;
}

export async function openContext(o: {
  runId: string;
  smoke: boolean;
  sizes: Sizes;
  mosquitto: Mosquitto;
  redisUrl: string;
  mysqlUrl: string;
  gatewayOverrides: Record<string, string>;
  signal: AbortSignal;
}): Promise<BenchContext> {
  const dbName = `gw_bench_${o.runId}`;
  const admin = await mysql.createConnection({ uri: o.mysqlUrl });
  await admin.query(`CREATE DATABASE \`${dbName}\``);
  await admin.end();
  const u = new URL(o.mysqlUrl);
  u.pathname = `/${dbName}`;
  const databaseUrl = u.toString();
  const db = mysql.createPool({
    uri: databaseUrl,
    connectionLimit: 4,
    decimalNumbers: true,
    typeCast: binaryAsText,
  });
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: 3, lazyConnect: false });
  return {
    runId: o.runId,
    smoke: o.smoke,
    sizes: o.sizes,
    mosquitto: o.mosquitto,
    redisUrl: o.redisUrl,
    redis,
    databaseUrl,
    dbName,
    db,
    gatewayOverrides: o.gatewayOverrides,
    signal: o.signal,
  };
}

/** Drops the database and every Redis key of this run. */
export async function closeContext(ctx: BenchContext, mysqlUrl: string): Promise<void> {
  await ctx.db.end().catch(() => {});
  const admin = await mysql.createConnection({ uri: mysqlUrl });
  await admin.query(`DROP DATABASE IF EXISTS \`${ctx.dbName}\``).catch(() => {});
  await admin.end();
  // The lists, and the gateway's own keys beside them (hash-tagged: `{bench_<run>_…}:…`).
  for (const pattern of [`bench_${ctx.runId}_*`, `{bench_${ctx.runId}_*`]) {
    let cursor = "0";
    do {
      const [next, keys] = await ctx.redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await ctx.redis.del(...keys);
    } while (cursor !== "0");
  }
  ctx.redis.disconnect();
}

/** The queue name of one scenario; every key of it starts with `bench_<run>_`. */
export function queueName(ctx: BenchContext, scenario: string): string {
  return `bench_${ctx.runId}_${scenario}_in`;
}

/** Environment of a gateway under test: this run's broker, queue, database, ids and share group. */
export function gatewayEnv(
  ctx: BenchContext,
  scenario: string,
  roles: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    MQTT_URL: ctx.mosquitto.url,
    MQTT_CLIENT_ID: `bench-${ctx.runId}-${scenario}`,
    MQTT_SHARE_GROUP: `bench${ctx.runId}${scenario.replace(/[^A-Za-z0-9]/g, "")}`,
    REDIS_URL: ctx.redisUrl,
    MQTT_INCOMING_QUEUE: queueName(ctx, scenario),
    MQTT_OUTGOING_QUEUE: `bench_${ctx.runId}_${scenario}_out`,
    DATABASE_URL: ctx.databaseUrl,
    GATEWAY_ROLES: roles,
    ...ctx.gatewayOverrides,
    ...extra,
  };
}

/** Polls `probe` every `everyMs` until it returns true; false on timeout or abort. */
export async function waitUntil(
  probe: () => Promise<boolean> | boolean,
  timeoutMs: number,
  signal: AbortSignal,
  everyMs = 100,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!signal.aborted && performance.now() < deadline) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

/** Jobs finished so far by outcome (summed over types unless `type` is given). */
export function jobsDone(scrape: Scrape, type?: string): { done: number; dead: number; retried: number } {
  const match = (outcome: string): Record<string, string> => type ? { outcome, type } : { outcome };
  return {
    done: scrape.sum("gateway_jobs_total", match("done")),
    dead: scrape.sum("gateway_jobs_total", match("dead")),
    retried: scrape.sum("gateway_jobs_total", match("retried")),
  };
}

/**
 * Polls the gateway's job counters every `everyMs` until `n` more jobs than `before` are finished
 * (done or dead). `ok` is false on timeout or abort; `progress` is the counters last read.
 */
export async function waitForJobs(
  gateway: Pick<GatewayProcess, "scrape">,
  before: ReturnType<typeof jobsDone>,
  n: number,
  timeoutMs: number,
  signal: AbortSignal,
  everyMs: number,
): Promise<{ ok: boolean; progress: ReturnType<typeof jobsDone> }> {
  let progress = before;
  const ok = await waitUntil(
    async () => {
      progress = jobsDone(await gateway.scrape());
      return progress.done + progress.dead - before.done - before.dead >= n;
    },
    timeoutMs,
    signal,
    everyMs,
  );
  return { ok, progress };
}

/** The transaction rows of machines `<prefix>…` and the units they sold (minus their slots' stock). */
export async function prefixLedger(
  ctx: BenchContext,
  prefix: string,
): Promise<{ rows: number; sold: number }> {
  const [[tx]] = await ctx.db.query(
    "SELECT COUNT(*) AS n FROM transactions WHERE serial_no LIKE ?",
    [`${prefix}%`],
  ) as unknown as [[{ n: number }]];
  const [[stock]] = await ctx.db.query(
    "SELECT COALESCE(-SUM(stock), 0) AS q FROM machine_slots WHERE serial_no LIKE ?",
    [`${prefix}%`],
  ) as unknown as [[{ q: number }]];
  return { rows: Number(tx.n), sold: Number(stock.q) };
}

/** Samples the depth of a Redis list (and the gateway's job counters) over a scenario. */
export class DepthSeries {
  readonly points: {
    t: number;
    ready: number;
    done: number;
    acked?: number;
    processing?: number;
    heapMb?: number;
    rssMb?: number;
  }[] = [];
  #timer: ReturnType<typeof setInterval>;
  #start = performance.now();

  constructor(ctx: BenchContext, queue: string, gateway?: GatewayProcess, everyMs = 250) {
    this.#timer = setInterval(async () => {
      try {
        const [ready, scrape] = await Promise.all([
          ctx.redis.llen(queue),
          gateway ? gateway.scrape() : Promise.resolve(null),
        ]);
        this.points.push({
          t: Math.round(performance.now() - this.#start) / 1000,
          ready,
          done: scrape ? jobsDone(scrape).done : 0,
          ...(scrape
            ? {
              acked: scrape.sum("gateway_mqtt_acked_total"),
              processing: scrape.sum("gateway_queue_depth", { queue, state: "processing" }),
              heapMb: Math.round(
                scrape.sum("gateway_process_memory_bytes", { kind: "heap_total" }) / 2 ** 20,
              ),
              rssMb: Math.round(scrape.sum("gateway_process_memory_bytes", { kind: "rss" }) / 2 ** 20),
            }
            : {}),
        });
      } catch {
        // a missed sample is fine
      }
    }, everyMs);
  }

  stop(): { maxDepth: number; points: DepthSeries["points"] } {
    clearInterval(this.#timer);
    return { maxDepth: Math.max(0, ...this.points.map((p) => p.ready)), points: this.points };
  }

  /** Highest job completion rate over any window of `windowS` seconds. */
  peakRate(windowS = 1): number {
    let best = 0;
    for (let i = 0, j = 0; j < this.points.length; j++) {
      while (this.points[j]!.t - this.points[i]!.t > windowS) i++;
      const dt = this.points[j]!.t - this.points[i]!.t;
      if (dt >= windowS * 0.75) best = Math.max(best, (this.points[j]!.done - this.points[i]!.done) / dt);
    }
    return best;
  }
}

/** A short random id of letters and digits. */
export function randomId(length = 6): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}

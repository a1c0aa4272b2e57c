/**
 * @module uplink
 * Scenario 2, uplink end to end, in three runs:
 * - `uplink-queue`: a gateway with the uplink role only; how fast messages are acknowledged into
 *   the Redis list (LLEN polled), as a share of the broker ceiling;
 * - `uplink-e2e`: uplink + worker, a burst of heartbeats and transactions (1 % redelivered
 *   transactions) from 2,000 machines; publish → every row committed; exactly-once checked;
 * - `uplink-rate`: a steady 5,000 msg/s mix; publish → committed latency.
 *
 * Latency method: every payload carries `sent_at` (epoch ms of the load generator; one host, one
 * clock). A transaction's commit time is its row's `created_at` (`CURRENT_TIMESTAMP(3)` of the
 * INSERT inside the committing DB transaction; the commit itself follows within that batch), so
 * every transaction is measured exactly, after the run, by one query. Heartbeats coalesce (last
 * wins), so they are sampled: every 100 ms the benchmark reads the machines whose `updated_at`
 * moved and takes `updated_at − last_heartbeat.sent_at` of the heartbeat that won.
 */
import { percentile } from "../sim/fleet.ts";
import {
  type BenchContext,
  DepthSeries,
  type Figure,
  gatewayEnv,
  jobsDone,
  prefixLedger,
  queueName,
  randomId,
  type ScenarioResult,
  waitForJobs,
  waitUntil,
} from "./context.ts";
import { GatewayProcess } from "./gateway_process.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { ProcWatcher } from "./services.ts";

function blastArgs(ctx: BenchContext, prefix: string, extra: string[] = []): string[] {
  const { sizes } = ctx;
  return [
    ...fleetArgs({ url: ctx.mosquitto.url, machines: sizes.blastMachines }),
    "--no-commands",
    "--messages",
    String(sizes.blastMessages),
    "--inflight",
    String(sizes.inflight),
    "--serial-prefix",
    prefix,
    "--run-id",
    `${ctx.runId}${randomId(3)}`,
    ...extra,
  ];
}

function processFigures(gw: ReturnType<ProcWatcher["stop"]>, label = "gateway"): Figure[] {
  return [
    { metric: `${label} RSS peak`, value: gw.peakRssMb, unit: "MB" },
    { metric: `${label} CPU mean`, value: gw.meanCpuPercent, unit: "%" },
  ];
}

/** Scenario 2a: how fast the uplink alone stores messages in the queue. */
export async function runUplinkQueue(ctx: BenchContext): Promise<ScenarioResult> {
  const scenario = "upq";
  const queue = queueName(ctx, scenario);
  const n = ctx.sizes.blastMessages;
  const gateway = await GatewayProcess.start(gatewayEnv(ctx, scenario, "uplink"));
  const load = new LoadGenerator(blastArgs(ctx, `Q${randomId(4)}-`));
  try {
    await load.connected;
    const depth = new DepthSeries(ctx, queue, gateway);
    const watch = new ProcWatcher(gateway.pid);
    const broker = new ProcWatcher(ctx.mosquitto.pid);
    const start = performance.now();
    await load.go();
    let stored = 0;
    const ok = await waitUntil(
      async () => (stored = await ctx.redis.llen(queue)) >= n,
      300_000,
      ctx.signal,
      20,
    );
    const seconds = (performance.now() - start) / 1000;
    const proc = watch.stop();
    const brokerProc = broker.stop();
    depth.stop();
    const done = await load.stop();
    const scrape = await gateway.scrape();
    return {
      name: "uplink-queue",
      title: "2a. Uplink only: publish → stored in the Redis list (PUBACK after)",
      figures: [
        { metric: "messages acked into the queue", value: stored / seconds, unit: "msg/s", rate: true },
        { metric: "  load generator publish rate", value: done?.send_rate ?? NaN, unit: "msg/s", rate: true },
        ...processFigures(proc),
        { metric: "load generator CPU mean", value: load.proc?.meanCpuPercent ?? NaN, unit: "%" },
        { metric: "broker CPU mean", value: brokerProc.meanCpuPercent, unit: "%" },
      ],
      notes: ok ? [] : [`timed out: ${stored} of ${n} stored`],
      data: {
        messages: n,
        stored,
        seconds,
        acked: scrape.sum("gateway_mqtt_acked_total"),
      },
    };
  } finally {
    await load.stop().catch(() => null);
    await gateway.stop();
  }
}

/** Counts this prefix's transactions and stock, to check exactly-once against what was sent. */
async function exactlyOnce(ctx: BenchContext, prefix: string, uniqueTx: number, uniqueQty: number) {
  const { rows, sold } = await prefixLedger(ctx, prefix);
  return { rows, sold, holds: rows === uniqueTx && sold === uniqueQty };
}

/** Scenario 2b: a burst through the whole pipeline, until every job is committed. */
export async function runUplinkE2e(
  ctx: BenchContext,
  gateway: GatewayProcess,
  queue: string,
): Promise<ScenarioResult> {
  const n = ctx.sizes.blastMessages;
  const prefix = `E${randomId(4)}-`;
  const load = new LoadGenerator(blastArgs(ctx, prefix, ["--duplicate-share", "0.01"]));
  try {
    await load.connected;
    const before = jobsDone(await gateway.scrape());
    const depth = new DepthSeries(ctx, queue, gateway);
    const watch = new ProcWatcher(gateway.pid);
    const start = performance.now();
    await load.go();
    const { ok, progress } = await waitForJobs(gateway, before, n, 600_000, ctx.signal, 50);
    const seconds = (performance.now() - start) / 1000;
    const proc = watch.stop();
    const series = depth.stop();
    const done = await load.stop();
    const stats = done!.stats;
    const once = await exactlyOnce(ctx, prefix, stats.uniqueTransactions, stats.uniqueQuantity);
    const committed = progress.done - before.done;
    return {
      name: "uplink-e2e",
      title: `2b. Uplink end to end: ${ctx.sizes.blastMachines} machines, heartbeat + transaction burst`,
      figures: [
        { metric: "publish → committed, all jobs", value: committed / seconds, unit: "msg/s", rate: true },
        { metric: "  heartbeats landed", value: stats.sent.heartbeat / seconds, unit: "msg/s", rate: true },
        {
          metric: "  transactions landed",
          value: stats.sent.transaction / seconds,
          unit: "msg/s",
          rate: true,
        },
        { metric: "  load generator publish rate", value: done?.send_rate ?? NaN, unit: "msg/s", rate: true },
        { metric: "queue depth peak", value: series.maxDepth, unit: "jobs" },
        { metric: "worker rate peak (1 s)", value: depth.peakRate(), unit: "jobs/s", rate: true },
        { metric: "transactions exactly once (1 = holds)", value: once.holds ? 1 : 0, unit: "bool" },
        ...processFigures(proc),
      ],
      notes: [
        ...(ok ? [] : [`timed out: ${committed} of ${n} committed`]),
        `exactly-once: ${stats.uniqueTransactions} distinct transactions sent (+${stats.duplicatesSent} redelivered), ` +
        `${once.rows} rows; ${stats.uniqueQuantity} units sold, stock down by ${once.sold}`,
        ...(progress.dead - before.dead > 0 ? [`${progress.dead - before.dead} jobs dead-lettered`] : []),
      ],
      data: { seconds, series: series.points, exactlyOnce: once, sent: stats },
    };
  } finally {
    await load.stop().catch(() => null);
  }
}

/** Samples heartbeat latency from `machines` while a run goes on (also used by scenario 5). */
export class HeartbeatSampler {
  readonly latencies: number[] = [];
  #seen = new Map<string, number>();
  #timer: ReturnType<typeof setInterval>;
  #busy = false;

  constructor(ctx: BenchContext, prefix: string, everyMs = 100) {
    this.#timer = setInterval(async () => {
      if (this.#busy) return;
      this.#busy = true;
      try {
        const [rows] = await ctx.db.query(
          `SELECT serial_no AS s, UNIX_TIMESTAMP(updated_at) * 1000 AS c,
                  JSON_EXTRACT(last_heartbeat, '$.sent_at') AS sent
             FROM machines WHERE serial_no LIKE ? AND last_heartbeat IS NOT NULL
                AND updated_at > NOW(3) - INTERVAL 2 SECOND`,
          [`${prefix}%`],
        ) as unknown as [{ s: string; c: number; sent: number | string | null }[]];
        for (const r of rows) {
          const sent = Number(r.sent);
          if (!(sent > 0) || this.#seen.get(r.s) === sent) continue;
          this.#seen.set(r.s, sent);
          this.latencies.push(Number(r.c) - sent);
        }
      } catch {
        // a missed sample is fine
      } finally {
        this.#busy = false;
      }
    }, everyMs);
  }

  stop(): number[] {
    clearInterval(this.#timer);
    return this.latencies;
  }
}

/** Scenario 2c: a steady rate (5,000 msg/s by default) and its publish → committed latency. */
export async function runUplinkRate(
  ctx: BenchContext,
  gateway: GatewayProcess,
  queue: string,
): Promise<ScenarioResult> {
  const { sizes } = ctx;
  const prefix = `R${randomId(4)}-`;
  const runId = `${ctx.runId}${randomId(3)}`;
  const machines = sizes.blastMachines;
  // Half heartbeats, half transactions.
  const hbInterval = machines / (sizes.rate / 2);
  const load = new LoadGenerator([
    ...fleetArgs({ url: ctx.mosquitto.url, machines }),
    "--no-commands",
    "--heartbeat-interval",
    String(hbInterval),
    "--transaction-rate",
    String(sizes.rate / 2),
    "--error-rate",
    "0",
    "--duration",
    String(sizes.rateSeconds),
    "--serial-prefix",
    prefix,
    "--run-id",
    runId,
  ]);
  try {
    await load.connected;
    const before = jobsDone(await gateway.scrape());
    const depth = new DepthSeries(ctx, queue, gateway);
    const sampler = new HeartbeatSampler(ctx, prefix);
    const watch = new ProcWatcher(gateway.pid);
    const broker = new ProcWatcher(ctx.mosquitto.pid);
    await load.go();
    const done = await load.done;
    const sent = done.sent;
    await waitUntil(
      async () => {
        const p = jobsDone(await gateway.scrape());
        return p.done + p.dead - before.done - before.dead >= sent;
      },
      120_000,
      ctx.signal,
      50,
    );
    await new Promise((r) => setTimeout(r, 300)); // a last heartbeat sample
    const hb = sampler.stop();
    const proc = watch.stop();
    const brokerProc = broker.stop();
    const series = depth.stop();
    await load.stop();
    const [rows] = await ctx.db.query(
      `SELECT UNIX_TIMESTAMP(created_at) * 1000 - JSON_EXTRACT(payload, '$.sent_at') AS l
         FROM transactions WHERE serial_no LIKE ?`,
      [`${prefix}%`],
    ) as unknown as [{ l: number | string }[]];
    const tx = rows.map((r) => Number(r.l));
    const all = [...tx, ...hb];
    return {
      name: "uplink-rate",
      title: `2c. Uplink at a steady ${sizes.rate} msg/s (${machines} machines, half heartbeats)`,
      figures: [
        { metric: "achieved publish rate", value: done.send_rate, unit: "msg/s", rate: true },
        { metric: "publish → committed p50", value: percentile(all, 50), unit: "ms" },
        { metric: "publish → committed p99", value: percentile(all, 99), unit: "ms" },
        { metric: "  transactions p99 (every one)", value: percentile(tx, 99), unit: "ms" },
        { metric: "  heartbeats p99 (sampled)", value: percentile(hb, 99), unit: "ms" },
        { metric: "  broker PUBACK to the publisher p99", value: done.puback_ms.p99, unit: "ms" },
        { metric: "queue depth peak", value: series.maxDepth, unit: "jobs" },
        ...processFigures(proc),
        { metric: "broker CPU mean", value: brokerProc.meanCpuPercent, unit: "%" },
      ],
      notes: [
        `${tx.length} transaction latencies, ${hb.length} heartbeat samples; max ${
          Math.round(Math.max(...all))
        } ms. Commit time = the row's CURRENT_TIMESTAMP(3) inside the committing DB transaction.`,
      ],
      data: { series: series.points, sent: done.stats },
    };
  } finally {
    await load.stop().catch(() => null);
  }
}

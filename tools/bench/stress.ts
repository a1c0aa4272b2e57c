/**
 * @module stress
 * Scenario 3, the seed's stress test: 500 machines heartbeating at once (every machine keeps 5
 * heartbeats in flight until each has sent its share), watching the queue depth and the worker
 * rate until the queue is empty again.
 */
import {
  type BenchContext,
  DepthSeries,
  jobsDone,
  randomId,
  type ScenarioResult,
  waitForJobs,
} from "./context.ts";
import type { GatewayProcess } from "./gateway_process.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { ProcWatcher } from "./services.ts";

export async function runStress(
  ctx: BenchContext,
  gateway: GatewayProcess,
  queue: string,
): Promise<ScenarioResult> {
  const { stressMachines: machines, stressPerMachine } = ctx.sizes;
  const n = machines * stressPerMachine;
  const prefix = `S${randomId(4)}-`;
  const load = new LoadGenerator([
    ...fleetArgs({ url: ctx.mosquitto.url, machines }),
    "--no-commands",
    "--messages",
    String(n),
    "--inflight",
    "5",
    "--transaction-share",
    "0",
    "--serial-prefix",
    prefix,
  ]);
  try {
    await load.connected;
    const before = jobsDone(await gateway.scrape());
    const depth = new DepthSeries(ctx, queue, gateway, 100);
    const watch = new ProcWatcher(gateway.pid);
    const start = performance.now();
    await load.go();
    const { ok, progress } = await waitForJobs(gateway, before, n, 300_000, ctx.signal, 50);
    const seconds = (performance.now() - start) / 1000;
    const proc = watch.stop();
    const series = depth.stop();
    const done = await load.stop();
    const [[landed]] = await ctx.db.query(
      "SELECT COUNT(*) AS n FROM machines WHERE serial_no LIKE ? AND last_heard_at IS NOT NULL",
      [`${prefix}%`],
    ) as unknown as [[{ n: number }]];
    return {
      name: "stress",
      title: `3. Seed stress test: ${machines} machines heartbeating at once (${n} heartbeats)`,
      figures: [
        { metric: "heartbeats published", value: done?.send_rate ?? NaN, unit: "msg/s", rate: true },
        {
          metric: "worker rate, whole run",
          value: (progress.done - before.done) / seconds,
          unit: "jobs/s",
          rate: true,
        },
        { metric: "worker rate peak (1 s)", value: depth.peakRate(), unit: "jobs/s", rate: true },
        { metric: "queue depth peak", value: series.maxDepth, unit: "jobs" },
        { metric: "publish start → queue empty, all landed", value: seconds, unit: "s" },
        { metric: "machines landed", value: Number(landed.n), unit: `of ${machines}` },
        { metric: "gateway RSS peak", value: proc.peakRssMb, unit: "MB" },
        { metric: "gateway CPU mean", value: proc.meanCpuPercent, unit: "%" },
      ],
      notes: ok ? [] : [`timed out: ${progress.done - before.done} of ${n} jobs done`],
      data: { series: series.points },
    };
  } finally {
    await load.stop().catch(() => null);
  }
}

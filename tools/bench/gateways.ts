/**
 * @module gateways
 * Scenario 7, scale-out: the same burst (heartbeats and transactions, 1 % redelivered) through 1,
 * 2 and 3 gateway processes (roles uplink + worker) that share one `$share` group, one Redis queue
 * and one database. Per run: publish → every job committed in total and per process, each
 * process's share of the messages, CPU and RSS, and lost / doubled transactions (rows against
 * what was sent). On one box every process competes for the same cores with the broker, Redis,
 * MariaDB and the load generator, so the total shows what the box allows, not what more nodes add.
 */
import {
  type BenchContext,
  type Figure,
  gatewayEnv,
  jobsDone,
  prefixLedger,
  randomId,
  type ScenarioResult,
  waitForJobs,
} from "./context.ts";
import { GatewayProcess } from "./gateway_process.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { ProcWatcher } from "./services.ts";

export const GATEWAY_COUNTS = [1, 2, 3] as const;

/** One run with `n` gateway processes. */
async function runWith(ctx: BenchContext, n: number) {
  const { sizes } = ctx;
  const scenario = `gw${n}`;
  const processes: GatewayProcess[] = [];
  try {
    for (let i = 0; i < n; i++) {
      processes.push(
        await GatewayProcess.start(
          gatewayEnv(ctx, scenario, "uplink,worker", {
            MQTT_CLIENT_ID: `bench-${ctx.runId}-${scenario}-${i}`,
          }),
        ),
      );
    }
    const [first, ...rest] = processes;
    first!.peers.push(...rest);
    const prefix = `G${n}${randomId(4)}-`;
    const load = new LoadGenerator([
      ...fleetArgs({ url: ctx.mosquitto.url, machines: sizes.gatewaysMachines }),
      "--no-commands",
      "--messages",
      String(sizes.gatewaysMessages),
      "--inflight",
      String(sizes.inflight),
      "--duplicate-share",
      "0.01",
      "--serial-prefix",
      prefix,
      "--run-id",
      `${ctx.runId}${randomId(3)}`,
    ]);
    try {
      await load.connected;
      const before = await Promise.all(processes.map(async (p) => jobsDone(await p.scrape())));
      const watchers = processes.map((p) => new ProcWatcher(p.pid));
      const start = performance.now();
      await load.go();
      const total = { done: 0, dead: 0, retried: 0 };
      for (const b of before) (total.done += b.done, total.dead += b.dead);
      const { ok, progress } = await waitForJobs(
        first!,
        total,
        sizes.gatewaysMessages,
        600_000,
        ctx.signal,
        50,
      );
      const seconds = (performance.now() - start) / 1000;
      const procs = watchers.map((w) => w.stop());
      const done = await load.stop();
      const stats = done!.stats;
      const each = await Promise.all(processes.map(async (p, i) => {
        const scrape = processCounters(await p.scrapeSelf());
        return {
          received: scrape.received,
          jobs: scrape.jobs - before[i]!.done,
          cpu: procs[i]!.meanCpuPercent,
          rss: procs[i]!.peakRssMb,
        };
      }));
      const { rows, sold } = await prefixLedger(ctx, prefix);
      const committed = progress.done - total.done;
      return {
        n,
        ok,
        seconds,
        committed,
        rate: committed / seconds,
        each,
        lost: Math.max(0, stats.uniqueTransactions - rows),
        doubled: Math.max(0, rows - stats.uniqueTransactions),
        stockHolds: sold === stats.uniqueQuantity,
        sent: stats.sent,
      };
    } finally {
      await load.stop().catch(() => null);
    }
  } finally {
    await Promise.all(processes.map((p) => p.stop()));
  }
}

/** The counters of one process (not summed with its peers). */
function processCounters(scrape: Awaited<ReturnType<GatewayProcess["scrapeSelf"]>>) {
  return {
    received: scrape.sum("gateway_mqtt_received_total"),
    jobs: jobsDone(scrape).done,
  };
}

export async function runGateways(ctx: BenchContext): Promise<ScenarioResult> {
  const runs = [];
  for (const n of GATEWAY_COUNTS) {
    if (ctx.signal.aborted) break;
    runs.push(await runWith(ctx, n));
  }
  const figures: Figure[] = [];
  const notes: string[] = [];
  for (const r of runs) {
    figures.push(
      {
        metric: `${r.n} process${r.n > 1 ? "es" : ""}: publish → committed, total`,
        value: r.rate,
        unit: "msg/s",
      },
      { metric: "  per process (mean)", value: r.rate / r.n, unit: "msg/s" },
      { metric: "  transactions lost", value: r.lost, unit: "" },
      { metric: "  transactions doubled", value: r.doubled, unit: "" },
      {
        metric: "  gateway CPU mean, sum of processes",
        value: r.each.reduce((a, e) => a + e.cpu, 0),
        unit: "%",
      },
      {
        metric: "  gateway RSS peak, largest process",
        value: Math.max(...r.each.map((e) => e.rss)),
        unit: "MB",
      },
    );
    notes.push(
      `${r.n} process(es): ${r.committed} jobs in ${r.seconds.toFixed(1)} s; per process received ${
        r.each.map((e) => e.received).join(" / ")
      }, jobs done ${r.each.map((e) => e.jobs).join(" / ")}, CPU ${
        r.each.map((e) => e.cpu.toFixed(0)).join(" / ")
      } %; stock ${r.stockHolds ? "holds" : "DOES NOT hold"}${r.ok ? "" : "; TIMED OUT"}`,
    );
  }
  return {
    name: "gateways",
    title:
      `7. Scale-out: 1, 2, 3 gateway processes (uplink + worker), one broker, Redis and database; ${ctx.sizes.gatewaysMessages} messages each`,
    figures,
    notes,
    data: { runs },
  };
}

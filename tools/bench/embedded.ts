/**
 * @module embedded
 * Scenario 6: the embedded backends (nothing configured: aedes broker in the gateway process,
 * SQLite queue and store in `DATA_DIR`), the same burst and steady rate as scenario 2. The load
 * generator connects anonymously (`MQTT_ALLOW_ANONYMOUS=true`, for the benchmark only) over MQTT
 * 3.1.1; latency and exactly-once are read from the SQLite file (read-only) after the run.
 */
import { DatabaseSync } from "node:sqlite";
import { percentile } from "../sim/fleet.ts";
import {
  type BenchContext,
  type Figure,
  jobsDone,
  randomId,
  type ScenarioResult,
  waitForJobs,
} from "./context.ts";
import { GatewayProcess } from "./gateway_process.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { freePort, ProcWatcher } from "./services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Reads the gateway's SQLite store; null when it cannot be opened read-only. */
function readStore<T>(dataDir: string, fn: (db: DatabaseSync) => T): T | null {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(`${ROOT}${dataDir}/gateway.db`, { readOnly: true });
    return fn(db);
  } catch (error) {
    console.error(`  cannot read the embedded store: ${(error as Error).message}`);
    return null;
  } finally {
    db?.close();
  }
}

export async function runEmbedded(ctx: BenchContext): Promise<ScenarioResult> {
  const { sizes } = ctx;
  // Under ./data: the gateway may write only there (--allow-write=./data).
  const dataDir = `data/bench-${ctx.runId}`;
  const port = freePort();
  const gateway = await GatewayProcess.start({
    ...ctx.gatewayOverrides,
    DATA_DIR: dataDir,
    MQTT_LISTEN_HOST: "127.0.0.1",
    MQTT_LISTEN_PORT: String(port),
    MQTT_ALLOW_ANONYMOUS: "true",
    MQTT_CLIENT_ID: `bench-${ctx.runId}-embedded`,
    API_TOKEN: `bench-${randomId(24)}`,
    GATEWAY_ROLES: "uplink,worker,downlink,api",
  });
  const url = `mqtt://127.0.0.1:${port}`;
  const figures: Figure[] = [];
  const notes: string[] = [];
  try {
    // A burst, until every job is committed.
    const burstPrefix = `B${randomId(4)}-`;
    const n = Math.round(sizes.blastMessages / 2);
    const burst = new LoadGenerator([
      ...fleetArgs({ url, machines: sizes.blastMachines, protocol: 4, connectRate: 2000 }),
      "--no-commands",
      "--messages",
      String(n),
      "--inflight",
      String(sizes.inflight),
      "--duplicate-share",
      "0.01",
      "--serial-prefix",
      burstPrefix,
    ]);
    let burstDone;
    try {
      await burst.connected;
      const before = jobsDone(await gateway.scrape());
      const watch = new ProcWatcher(gateway.pid);
      const start = performance.now();
      await burst.go();
      const { ok, progress } = await waitForJobs(gateway, before, n, 600_000, ctx.signal, 100);
      const seconds = (performance.now() - start) / 1000;
      const proc = watch.stop();
      burstDone = await burst.stop();
      const committed = progress.done - before.done;
      figures.push(
        {
          metric: "burst: publish → committed, all jobs",
          value: committed / seconds,
          unit: "msg/s",
          rate: true,
        },
        { metric: "  gateway RSS peak", value: proc.peakRssMb, unit: "MB" },
        { metric: "  gateway CPU mean", value: proc.meanCpuPercent, unit: "%" },
      );
      if (!ok) notes.push(`burst timed out: ${committed} of ${n} committed`);
    } finally {
      await burst.stop().catch(() => null);
    }
    const stats = burstDone?.stats;
    if (stats) {
      const once = readStore(dataDir, (db) => {
        const rows = db.prepare("SELECT COUNT(*) AS n FROM transactions WHERE serial_no LIKE ?")
          .get(`${burstPrefix}%`) as { n: number };
        const stock = db.prepare(
          "SELECT COALESCE(-SUM(stock), 0) AS q FROM machine_slots WHERE serial_no LIKE ?",
        )
          .get(`${burstPrefix}%`) as { q: number };
        return { rows: Number(rows.n), sold: Number(stock.q) };
      });
      if (once) {
        const holds = once.rows === stats.uniqueTransactions && once.sold === stats.uniqueQuantity;
        figures.push({
          metric: "  transactions exactly once (1 = holds)",
          value: holds ? 1 : 0,
          unit: "bool",
        });
        notes.push(
          `exactly-once: ${stats.uniqueTransactions} distinct sales (+${stats.duplicatesSent} redelivered), ` +
            `${once.rows} rows; ${stats.uniqueQuantity} units, stock down by ${once.sold}`,
        );
      }
    }

    // A steady rate, for latency.
    const ratePrefix = `F${randomId(4)}-`;
    const machines = sizes.blastMachines;
    const rate = new LoadGenerator([
      ...fleetArgs({ url, machines, protocol: 4, connectRate: 2000 }),
      "--no-commands",
      "--heartbeat-interval",
      String(machines / (sizes.rate / 2)),
      "--transaction-rate",
      String(sizes.rate / 2),
      "--error-rate",
      "0",
      "--duration",
      String(sizes.rateSeconds),
      "--serial-prefix",
      ratePrefix,
    ]);
    try {
      await rate.connected;
      const before = jobsDone(await gateway.scrape());
      const watch = new ProcWatcher(gateway.pid);
      await rate.go();
      const done = await rate.done;
      await waitForJobs(gateway, before, done.sent, 300_000, ctx.signal, 100);
      const proc = watch.stop();
      await rate.stop();
      const latencies = readStore(dataDir, (db) =>
        (db.prepare(
          "SELECT created_at - json_extract(payload, '$.sent_at') AS l FROM transactions WHERE serial_no LIKE ?",
        ).all(`${ratePrefix}%`) as { l: number }[]).map((r) => Number(r.l))) ?? [];
      figures.push(
        { metric: `steady ${sizes.rate} msg/s: achieved`, value: done.send_rate, unit: "msg/s", rate: true },
        { metric: "  publish → committed p50 (transactions)", value: percentile(latencies, 50), unit: "ms" },
        { metric: "  publish → committed p99 (transactions)", value: percentile(latencies, 99), unit: "ms" },
        { metric: "  gateway RSS peak", value: proc.peakRssMb, unit: "MB" },
        { metric: "  gateway CPU mean", value: proc.meanCpuPercent, unit: "%" },
      );
      notes.push(`${latencies.length} transaction latencies (created_at is epoch ms in SQLite)`);
    } finally {
      await rate.stop().catch(() => null);
    }
  } finally {
    await gateway.stop();
    await Deno.remove(`${ROOT}${dataDir}`, { recursive: true }).catch(() => {});
  }
  return {
    name: "embedded",
    title:
      `6. Embedded backends (aedes + SQLite queue + SQLite store, one process), ${sizes.blastMachines} machines`,
    figures,
    notes,
  };
}

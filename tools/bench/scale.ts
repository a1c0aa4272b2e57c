/**
 * @module scale
 * Scenario 5: 10,000 connected machines (one MQTT connection each, each subscribed to its command
 * topic), each heartbeating every 10 s. Reports how long connecting took, how many stayed
 * connected, the heartbeat rate that landed, and the memory and CPU of gateway, broker and load
 * generator, with the open-file limits that cap the connection count, and the heartbeats'
 * publish → committed latency (sampled as in scenario 2c). `--scale-seconds` runs it longer.
 */
import { percentile } from "../sim/fleet.ts";
import { HeartbeatSampler } from "./uplink.ts";
import { type BenchContext, jobsDone, randomId, type ScenarioResult, waitUntil } from "./context.ts";
import type { GatewayProcess } from "./gateway_process.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { openFileLimit, ProcWatcher } from "./services.ts";

export async function runScale(ctx: BenchContext, gateway: GatewayProcess): Promise<ScenarioResult> {
  const { scaleMachines: machines, scaleSeconds: seconds, connectRate } = ctx.sizes;
  const prefix = `Z${randomId(4)}-`;
  const brokerWatch = new ProcWatcher(ctx.mosquitto.pid);
  const gatewayWatch = new ProcWatcher(gateway.pid);
  const load = new LoadGenerator([
    ...fleetArgs({ url: ctx.mosquitto.url, machines, connectRate }),
    "--heartbeat-interval",
    "10",
    "--transaction-rate",
    "0",
    "--error-rate",
    "0",
    "--duration",
    String(seconds),
    "--serial-prefix",
    prefix,
  ]);
  try {
    const connected = await load.connected;
    const limits = {
      loadGenerator: await openFileLimit(load.pid),
      broker: await openFileLimit(ctx.mosquitto.pid),
    };
    await load.go();
    const before = jobsDone(await gateway.scrape(), "heartbeat");
    const start = performance.now();
    const sampler = new HeartbeatSampler(ctx, prefix);
    let minConnected = connected.stats.connected;
    const done = await (async () => {
      const watcher = setInterval(() => {
        if (load.last) minConnected = Math.min(minConnected, load.last.connected);
      }, 500);
      try {
        return await load.done;
      } finally {
        clearInterval(watcher);
      }
    })();
    const sendSeconds = (performance.now() - start) / 1000;
    const sent = done.stats.sent.heartbeat;
    await waitUntil(
      async () => jobsDone(await gateway.scrape(), "heartbeat").done - before.done >= sent,
      60_000,
      ctx.signal,
      200,
    );
    const after = jobsDone(await gateway.scrape(), "heartbeat");
    const hb = sampler.stop();
    const [[landed]] = await ctx.db.query(
      "SELECT COUNT(*) AS n FROM machines WHERE serial_no LIKE ? AND last_heard_at IS NOT NULL",
      [`${prefix}%`],
    ) as unknown as [[{ n: number }]];
    const gw = gatewayWatch.stop();
    const broker = brokerWatch.stop();
    await load.stop();
    const sim = load.watcher.stop();
    return {
      name: "scale",
      title: `5. Scale: ${machines} connected machines, a heartbeat every 10 s each`,
      figures: [
        { metric: "machines connected", value: connected.stats.connected, unit: `of ${machines}` },
        { metric: "  lowest while sending", value: minConnected, unit: `of ${machines}` },
        { metric: "connect time (paced)", value: connected.seconds, unit: "s" },
        {
          metric: "heartbeats landed",
          value: (after.done - before.done) / sendSeconds,
          unit: "msg/s",
          rate: true,
        },
        { metric: "machines with a heartbeat in SQL", value: Number(landed.n), unit: `of ${machines}` },
        { metric: "heartbeat publish → committed p50 (sampled)", value: percentile(hb, 50), unit: "ms" },
        { metric: "  heartbeat p99 (sampled)", value: percentile(hb, 99), unit: "ms" },
        { metric: "gateway RSS peak", value: gw.peakRssMb, unit: "MB" },
        { metric: "gateway CPU mean", value: gw.meanCpuPercent, unit: "%" },
        { metric: "broker RSS peak", value: broker.peakRssMb, unit: "MB" },
        { metric: "broker CPU mean", value: broker.meanCpuPercent, unit: "%" },
        { metric: "load generator RSS peak", value: sim.peakRssMb, unit: "MB" },
      ],
      notes: [
        `connect rate ${connectRate}/s; open-file limits (soft/hard): load generator ${
          JSON.stringify(limits.loadGenerator)
        }, broker ${JSON.stringify(limits.broker)} (each needs one descriptor per connection)`,
        `${sent} heartbeats sent in ${
          sendSeconds.toFixed(1)
        } s; connect failures ${done.stats.connectFailures}; ${hb.length} heartbeat latency samples`,
      ],
    };
  } finally {
    await load.stop().catch(() => null);
    gatewayWatch.stop();
    brokerWatch.stop();
  }
}

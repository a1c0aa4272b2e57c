/**
 * @module ceilings
 * Scenario 1: what the parts around the gateway can do on their own, measured in the same run
 * and on the same machine as everything else: the broker's QoS 1 delivery rate to a bare mqtt.js
 * subscriber (fed by the same load generator as the uplink runs), the Redis push rate
 * (one `RPUSH` per message, pipelined, as the uplink pushes), and the database's batched insert
 * rate (multi-row INSERTs into a copy of `transactions`), and the downlink's floor: the latency of
 * HTTP → MQTT publish → machine with nothing in between (`tools/bench/downlink_floor_server.ts`), at the
 * rate and with the machines of scenario 4.
 */
import { Redis } from "ioredis";
import mqtt from "mqtt";
import { encodeBridgePayload } from "../../contract/incoming_job.ts";
import { type BenchContext, randomId, type ScenarioResult, waitUntil } from "./context.ts";
import { commandFleet, measureCommands, runNote, serialOf } from "./downlink.ts";
import { percentile } from "../sim/fleet.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { freePort, ProcWatcher, waitForPort } from "./services.ts";

export interface Ceilings {
  broker: number;
  redis: number;
  database: number;
}

export async function brokerCeiling(
  ctx: BenchContext,
): Promise<{ rate: number; loadRate: number; loadCpu: number; brokerCpu: number }> {
  const { sizes } = ctx;
  const group = `ceil${randomId()}`;
  const prefix = `C${randomId(4)}-`;
  const sub = mqtt.connect(ctx.mosquitto.url, {
    clientId: `bench-${ctx.runId}-bare`,
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 0,
  });
  let received = 0;
  let lastAt = 0;
  sub.on("message", () => {
    received++;
    lastAt = performance.now();
  });
  await new Promise<void>((resolve, reject) => {
    sub.once("connect", () => resolve());
    sub.once("error", reject);
  });
  await sub.subscribeAsync({
    [`$share/${group}/machine/+/heartbeat`]: { qos: 1 },
    [`$share/${group}/machine/+/transaction`]: { qos: 1 },
  });
  const load = new LoadGenerator([
    ...fleetArgs({ url: ctx.mosquitto.url, machines: sizes.blastMachines }),
    "--no-commands",
    "--messages",
    String(sizes.blastMessages),
    "--inflight",
    String(sizes.inflight),
    "--serial-prefix",
    prefix,
  ]);
  try {
    await load.connected;
    const broker = new ProcWatcher(ctx.mosquitto.pid);
    const start = performance.now();
    await load.go();
    const ok = await waitUntil(() => received >= sizes.blastMessages, 300_000, ctx.signal, 20);
    if (!ok) throw new Error(`the bare subscriber got ${received} of ${sizes.blastMessages} messages`);
    const brokerProc = broker.stop();
    const done = await load.stop();
    return {
      rate: received / ((lastAt - start) / 1000),
      loadRate: done?.send_rate ?? NaN,
      loadCpu: load.proc?.meanCpuPercent ?? NaN,
      brokerCpu: brokerProc.meanCpuPercent,
    };
  } finally {
    await load.stop().catch(() => null);
    await sub.endAsync(true);
  }
}

export async function redisCeiling(ctx: BenchContext): Promise<number> {
  const n = ctx.sizes.redisPushes;
  const key = `bench_${ctx.runId}_ceiling_push`;
  const redis = new Redis(ctx.redisUrl, { enableAutoPipelining: true });
  const job = encodeBridgePayload({
    type: "heartbeat",
    serial_no: "M-000001",
    payload: { current_page: 1, temperature: 25.5, sent_at: 1776000000000.123 },
    received_at: "2026-04-14T09:00:00+08:00",
  });
  try {
    // As many pushes in flight as the uplink could have with many connections.
    const window = 256;
    const start = performance.now();
    let sent = 0;
    const lane = async () => {
      while (sent < n) {
        sent++;
        await redis.rpush(key, job);
      }
    };
    await Promise.all(Array.from({ length: window }, lane));
    const seconds = (performance.now() - start) / 1000;
    const length = await redis.llen(key);
    if (length !== n) throw new Error(`pushed ${n} but the list holds ${length}`);
    return n / seconds;
  } finally {
    await redis.del(key);
    redis.disconnect();
  }
}

export async function databaseCeiling(ctx: BenchContext): Promise<number> {
  const n = ctx.sizes.dbRows;
  const batch = 500;
  const table = `bench_insert_ceiling`;
  // The shape of `transactions` (the gateway may not have migrated this database yet).
  await ctx.db.query(`CREATE TABLE ${table} (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    transaction_id VARBINARY(256) NOT NULL, serial_no VARBINARY(64) NOT NULL, slot_no INT NOT NULL,
    quantity INT NOT NULL, amount DECIMAL(12,2) NOT NULL, payload JSON NOT NULL,
    received_at DATETIME(3) NOT NULL, created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY transactions_serial_no_transaction_id_unique (serial_no, transaction_id))`);
  try {
    const payload = JSON.stringify({ transaction_id: "T", slot_no: 1, quantity: 1, amount: 35, sent_at: 0 });
    let next = 0;
    const start = performance.now();
    const lane = async () => {
      while (next < n) {
        const from = next;
        const rows = [];
        for (let i = 0; i < batch && next < n; i++, next++) {
          rows.push([
            `TC-${ctx.runId}-${from + i}`,
            `M-${(from + i) % 2000}`,
            1,
            1,
            "35.00",
            payload,
            new Date(),
          ]);
        }
        await ctx.db.query(
          `INSERT INTO ${table} (transaction_id, serial_no, slot_no, quantity, amount, payload, received_at) VALUES ?`,
          [rows],
        );
      }
    };
    // Two writers, as the gateway's two default workers.
    await Promise.all([lane(), lane()]);
    const seconds = (performance.now() - start) / 1000;
    return n / seconds;
  } finally {
    await ctx.db.query(`DROP TABLE IF EXISTS ${table}`);
  }
}

/** Scenario 4's drive against the floor server: p50/p99 of HTTP → receipt, and its process's CPU. */
export async function downlinkFloor(
  ctx: BenchContext,
): Promise<{ p50: number; p99: number; rate: number; cpu: number; note: string }> {
  const { downlinkMachines: machines, downlinkRate: rate, downlinkSeconds: seconds } = ctx.sizes;
  const port = freePort();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env", // mqtt.js's dependencies read a few variables (READABLE_STREAM, DEBUG)
      new URL("./downlink_floor_server.ts", import.meta.url).pathname,
      ctx.mosquitto.url,
      String(port),
      "5",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const prefix = `F${randomId(4)}-`;
  const load = commandFleet(ctx, machines, prefix);
  try {
    await Promise.race([
      waitForPort(port, 30_000),
      server.status.then((st) => {
        throw new Error(`the downlink floor server exited with ${st.code}`);
      }),
    ]);
    const watch = new ProcWatcher(server.pid);
    const run = await measureCommands({
      ctx,
      load,
      baseUrl: `http://127.0.0.1:${port}`,
      apiToken: "none",
      serial: serialOf(prefix, machines),
      machines,
      rate,
      seconds,
    });
    const proc = watch.stop();
    return {
      p50: percentile(run.latencies, 50),
      p99: percentile(run.latencies, 99),
      rate: run.acceptedRate,
      cpu: proc.meanCpuPercent,
      note: `downlink floor: ${runNote(run)}`,
    };
  } finally {
    await load.stop().catch(() => null);
    try {
      server.kill("SIGTERM");
    } catch { /* already gone */ }
    await server.status;
  }
}

export async function runCeilings(
  ctx: BenchContext,
): Promise<{ result: ScenarioResult; ceilings: Ceilings }> {
  const broker = await brokerCeiling(ctx);
  const redis = await redisCeiling(ctx);
  const database = await databaseCeiling(ctx);
  const floor = await downlinkFloor(ctx);
  return {
    ceilings: { broker: broker.rate, redis, database },
    result: {
      name: "ceilings",
      title: "1. Ceilings (same run, same machine)",
      figures: [
        { metric: "broker QoS 1 → bare subscriber", value: broker.rate, unit: "msg/s", rate: true },
        { metric: "  load generator publish rate", value: broker.loadRate, unit: "msg/s", rate: true },
        { metric: "  load generator CPU mean", value: broker.loadCpu, unit: "%" },
        { metric: "  broker CPU mean", value: broker.brokerCpu, unit: "%" },
        { metric: "Redis RPUSH, one job each, pipelined", value: redis, unit: "push/s", rate: true },
        { metric: "DB batched INSERT (500 rows, 2 writers)", value: database, unit: "rows/s", rate: true },
        {
          metric:
            `downlink floor: HTTP → MQTT → machine, nothing between, at ${ctx.sizes.downlinkRate}/s, p50`,
          value: floor.p50,
          unit: "ms",
        },
        { metric: "  downlink floor p99", value: floor.p99, unit: "ms" },
        { metric: "  downlink floor server CPU mean", value: floor.cpu, unit: "%" },
      ],
      notes: [
        `broker: ${ctx.sizes.blastMessages} QoS 1 messages from ${ctx.sizes.blastMachines} connections ` +
        `(${ctx.sizes.inflight} in flight each) to one mqtt.js subscriber in a shared subscription`,
        floor.note,
      ],
    },
  };
}

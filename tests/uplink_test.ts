/**
 * @module uplink_test
 * End to end against real Mosquitto + Redis + MariaDB: machine publishes → queue → jobs → SQL.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Gateway } from "../app/gateway.ts";
import { RedisQueue } from "../queue/redis/redis_queue.ts";
import {
  machineClient,
  publishJson,
  query,
  SERVICES,
  startGateway,
  testEnv,
  uniqueId,
  waitFor,
} from "./support.ts";

const HEARTBEAT = { current_page: 1, temperature: 25.5 };

Deno.test("heartbeat from the seed sets machines.last_heard_at, temperature and current_page", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config());
  const machine = await machineClient();
  try {
    await startGateway(gateway);
    const serial = uniqueId("TEST-001-");
    const before = Date.now() - 1000;
    await publishJson(machine, `machine/${serial}/heartbeat`, { ...HEARTBEAT, firmware: "1.2.3" });
    const [row] = await waitFor(
      async () => {
        const rows = await query<Record<string, unknown>>(
          t.db.url,
          "SELECT * FROM machines WHERE serial_no = ?",
          [
            serial,
          ],
        );
        return rows.length ? rows : null;
      },
      10_000,
      "the heartbeat row",
    );
    assert.ok(row);
    assert.ok(row.last_heard_at instanceof Date);
    assert.ok((row.last_heard_at as Date).getTime() >= before - 1000);
    assert.equal(row.temperature, 25.5);
    assert.equal(row.current_page, 1);
    assert.equal(row.registered, 0, "an unknown serial is recorded as an unregistered machine");
    const kept = typeof row.last_heartbeat === "string" ? JSON.parse(row.last_heartbeat) : row.last_heartbeat;
    assert.equal(kept.firmware, "1.2.3", "extra fields are kept");
  } finally {
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("the same transaction published three times gives one row and stock down by one", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config());
  const machine = await machineClient();
  try {
    await startGateway(gateway);
    const serial = uniqueId("M-");
    const tx = { transaction_id: uniqueId("T"), slot_no: 5, quantity: 1, amount: 35 };
    for (let i = 0; i < 3; i++) await publishJson(machine, `machine/${serial}/transaction`, tx);
    await waitFor(
      async () => {
        const jobs = await gateway.metrics.jobs.get();
        return jobs.values.filter((v) => v.labels.outcome === "done").reduce((a, v) => a + v.value, 0) >= 3;
      },
      10_000,
      "three jobs done",
    );
    const rows = await query(t.db.url, "SELECT * FROM transactions WHERE transaction_id = ?", [
      tx.transaction_id,
    ]);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.amount, 35);
    const slots = await query<{ stock: number }>(
      t.db.url,
      "SELECT stock FROM machine_slots WHERE serial_no = ? AND slot_no = 5",
      [serial],
    );
    assert.deepEqual(slots.map((s) => s.stock), [-1]);
  } finally {
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("malformed JSON between two good messages: both good ones land, the bad one is dead-lettered", async () => {
  const t = await testEnv();
  // One worker: the rows' order below is the queue's. With two, a push of E101 and E103 together
  // can wake both workers' BLMOVEs, and either may commit first.
  const gateway = new Gateway(t.config({ WORKER_CONCURRENCY: "1" }));
  const machine = await machineClient();
  const redis = new Redis(SERVICES.redis);
  try {
    await startGateway(gateway);
    const serial = uniqueId("M-");
    await publishJson(machine, `machine/${serial}/error`, { code: "E101", message: "first", level: "error" });
    await publishJson(machine, `machine/${serial}/error`, '{"code": "E102", "message": ');
    await publishJson(machine, `machine/${serial}/error`, {
      code: "E103",
      message: "third",
      level: "warning",
    });
    const logs = await waitFor(
      async () => {
        const rows = await query<{ code: string }>(
          t.db.url,
          "SELECT code FROM machine_logs WHERE serial_no = ? ORDER BY id",
          [serial],
        );
        return rows.length === 2 ? rows : null;
      },
      10_000,
      "two machine_logs rows",
    );
    assert.deepEqual(logs.map((r) => r.code), ["E101", "E103"]);
    const dead = (await redis.lrange(`{${t.env.MQTT_INCOMING_QUEUE}}:dead`, 0, -1)).map((s) => JSON.parse(s));
    assert.equal(dead.length, 1);
    assert.match(dead[0].reason, new RegExp(`Cannot parse error from ${serial}`));
    assert.match(JSON.parse(dead[0].job).payload, /E102/);
    const status = await gateway.status() as { counters: { rejected_by_reason: Record<string, number> } };
    assert.equal(status.counters.rejected_by_reason.invalid_json, 1);
  } finally {
    redis.disconnect();
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("bad input is counted and rejected while good messages around it flow on", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config({ MQTT_MAX_PAYLOAD_BYTES: "1024" }));
  const machine = await machineClient();
  const redis = new Redis(SERVICES.redis);
  try {
    await startGateway(gateway);
    const serial = uniqueId("M-");
    await publishJson(machine, `machine/${serial}/heartbeat`, { temperature: 1 });
    // received_at has whole seconds: two heartbeats of one second taken by two workers may land in
    // either order, so let the first one land before the last good one is sent.
    await waitFor(async () =>
      (await query(t.db.url, "SELECT 1 FROM machines WHERE serial_no = ?", [serial])).length
    );
    await publishJson(machine, `machine/${serial}/heartbeat`, { temperature: "hot" }); // wrong type
    await publishJson(machine, `machine/${serial}/heartbeat`, { temperature: 2, pad: "x".repeat(5000) }); // too large
    await publishJson(machine, `machine/${serial}/heartbeat`, "[1, 2]"); // not an object
    await publishJson(machine, `machine/${serial}/unknown`, { a: 1 }); // not subscribed: never reaches us
    await publishJson(machine, `machine/${serial}/transaction`, { transaction_id: "x" }); // fails its schema
    await publishJson(machine, `machine/${serial}/heartbeat`, { temperature: 3, current_page: 7 });
    const [row] = await waitFor(
      async () => {
        const rows = await query<{ temperature: number; current_page: number }>(
          t.db.url,
          "SELECT temperature, current_page FROM machines WHERE serial_no = ?",
          [serial],
        );
        return rows[0]?.current_page === 7 ? rows : null;
      },
      10_000,
      "the last good heartbeat",
    );
    assert.equal(row!.temperature, 3);
    const dead = await waitFor(
      async () => {
        const items = (await redis.lrange(`{${t.env.MQTT_INCOMING_QUEUE}}:dead`, 0, -1)).map((s) =>
          JSON.parse(s)
        );
        return items.length === 4 ? items : null;
      },
      10_000,
      "four dead letters",
    );
    const reasons = dead.map((d) => d.reason as string).join("\n");
    assert.match(reasons, new RegExp(`Cannot parse heartbeat from ${serial}: temperature: .*number`));
    assert.match(reasons, /exceeds 1024/);
    assert.match(reasons, /not a JSON object/);
    assert.match(reasons, new RegExp(`Cannot parse transaction from ${serial}: slot_no`));
    // Only this machine's: the gateway subscribes to every machine on the shared broker.
    const rows = await query(t.db.url, "SELECT * FROM transactions WHERE serial_no = ?", [serial]);
    assert.equal(rows.length, 0);
  } finally {
    redis.disconnect();
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("a job leased by a worker that died mid-job is processed after restart", async () => {
  const t = await testEnv();
  const config = t.config({ GATEWAY_ROLES: "uplink" });
  const redis = new Redis(SERVICES.redis);
  const machine = await machineClient();
  let gateway = new Gateway(config);
  try {
    // 1. Only the uplink runs: the message is queued, nobody processes it.
    await startGateway(gateway);
    const serial = uniqueId("M-");
    const tx = { transaction_id: uniqueId("T"), slot_no: 2, quantity: 3, amount: 10 };
    await publishJson(machine, `machine/${serial}/transaction`, tx);
    await waitFor(() => redis.llen(config.redis.incomingQueue), 5000, "the queued job");
    await gateway.close();

    // 2. A worker (same consumer slot as the gateway's worker 0) leases it and dies without ack.
    const dying = new RedisQueue(redis, config.redis.incomingQueue, {
      consumerId: `${config.mqtt.clientId}:worker:0`,
    });
    const leased = await dying.lease(10, 100);
    assert.equal(leased.length, 1);
    assert.equal(await redis.llen(config.redis.incomingQueue), 0, "the job is only in the processing list");
    await dying.close();

    // 3. A second job was leased by a worker on another host, whose liveness then lapsed.
    const tx2 = { ...tx, transaction_id: uniqueId("T") };
    await redis.rpush(
      config.redis.incomingQueue,
      JSON.stringify({
        type: "transaction",
        serial_no: serial,
        payload: tx2,
        received_at: "2026-04-14T09:00:00+08:00",
      }),
    );
    const other = new RedisQueue(redis, config.redis.incomingQueue, { consumerId: "other-host:worker:0" });
    assert.equal((await other.lease(10, 100)).length, 1);
    await other.close();
    await redis.del(`{${config.redis.incomingQueue}}:consumer:other-host:worker:0`); // its TTL expired

    // 4. Restart with the worker role: both jobs are put back and processed, once.
    gateway = new Gateway(t.config({ GATEWAY_ROLES: "worker" }));
    await startGateway(gateway);
    const rows = await waitFor(
      async () => {
        const r = await query(t.db.url, "SELECT transaction_id FROM transactions WHERE serial_no = ?", [
          serial,
        ]);
        return r.length === 2 ? r : null;
      },
      10_000,
      "both transactions",
    );
    assert.equal(rows.length, 2);
    const [slot] = await query<{ stock: number }>(
      t.db.url,
      "SELECT stock FROM machine_slots WHERE serial_no = ?",
      [
        serial,
      ],
    );
    assert.equal(slot!.stock, -6);
    const depth = await new RedisQueue(redis, config.redis.incomingQueue, { consumerId: "probe" }).depth();
    assert.deepEqual({ ...depth }, { ready: 0, processing: 0, delayed: 0, dead: 0 });
  } finally {
    redis.disconnect();
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("a Laravel-style consumer reading mqtt_incoming_jobs sees exactly the contract's JSON", async () => {
  const t = await testEnv();
  const config = t.config({ GATEWAY_ROLES: "uplink" });
  const gateway = new Gateway(config);
  const machine = await machineClient();
  const laravel = new Redis(SERVICES.redis);
  try {
    await startGateway(gateway);
    const serial = uniqueId("TEST-001-");
    await publishJson(machine, `machine/${serial}/heartbeat`, HEARTBEAT);
    // What `mqtt:listen` does: BLPOP mqtt_incoming_jobs.
    const popped = await laravel.blpop(config.redis.incomingQueue, 5);
    assert.ok(popped, "a job was pushed");
    const raw = popped[1];
    const job = JSON.parse(raw);
    assert.deepEqual(Object.keys(job), ["type", "serial_no", "payload", "received_at"]);
    assert.equal(job.type, "heartbeat");
    assert.equal(job.serial_no, serial);
    assert.deepEqual(job.payload, HEARTBEAT);
    assert.match(job.received_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/);
    assert.ok(Math.abs(Date.parse(job.received_at) - Date.now()) < 10_000);
    assert.equal(
      raw,
      `{"type":"heartbeat","serial_no":"${serial}","payload":{"current_page":1,"temperature":25.5},"received_at":"${job.received_at}"}`,
    );
  } finally {
    laravel.disconnect();
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("HTTP: /healthz, /readyz and /mqtt/status describe the running gateway", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config());
  try {
    await startGateway(gateway);
    assert.equal((await gateway.app.request("/healthz")).status, 200);
    await waitFor(() => gateway.connection?.connected, 5000, "the broker connection");
    const ready = await gateway.app.request("/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual((await ready.json()).checks, {
      broker: { ok: true },
      queue: { ok: true },
      database: { ok: true },
    });
    const status = await (await gateway.app.request("/mqtt/status", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).json();
    assert.equal(status.connected, true);
    assert.equal(status.broker, SERVICES.mqtt);
    assert.ok(status.subscriptions.includes(`$share/${t.env.MQTT_SHARE_GROUP}/machine/+/heartbeat`));
    assert.deepEqual(status.backends, { broker: "external", queue: "redis", database: "mysql" });
    assert.equal(typeof status.queues[t.env.MQTT_INCOMING_QUEUE].ready, "number");
    assert.equal(typeof status.queues[t.env.MQTT_OUTGOING_QUEUE].ready, "number", "the outgoing queue too");
    const missing = await gateway.app.request("/nope");
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, "not_found");
  } finally {
    await gateway.close();
    await t.cleanup();
  }
});

/**
 * @module embedded_test
 * The gateway with nothing configured (no MQTT_URL, REDIS_URL, DATABASE_URL): the in-process broker,
 * the SQLite queue and the SQLite store, end to end. A machine connects with serial + token, its
 * heartbeat and transaction (sent twice) land in `DATA_DIR/gateway.db` with stock down once; a job
 * left leased by a worker that died is processed after a restart on the same DATA_DIR; the broker
 * refuses a wrong token and drops spoofed and command publishes.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import mqtt, { type MqttClient } from "mqtt";
import { loadConfig } from "../config.ts";
import { Gateway } from "../app/gateway.ts";
import { SqliteQueue } from "../queue/sqlite/sqlite_queue.ts";
import { SERVICES, uniqueId, waitFor } from "./support.ts";

const API_TOKEN = "embedded-test-api-token-0123";

function embeddedConfig(dataDir: string, clientId: string, overrides: Record<string, string> = {}) {
  return loadConfig({
    DATA_DIR: dataDir,
    MQTT_LISTEN_PORT: "0",
    MQTT_CLIENT_ID: clientId,
    API_TOKEN,
    JOB_RETRY_BASE_MS: "50",
    JOB_RETRY_MAX_MS: "500",
    LOG_LEVEL: "error",
    ...overrides,
  });
}

function api(gateway: Gateway, method: string, path: string, body?: unknown): Promise<Response> {
  return Promise.resolve(gateway.app.request(path, {
    method,
    headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  }));
}

async function issueToken(gateway: Gateway, serial: string): Promise<string> {
  const res = await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
  assert.equal(res.status, 201);
  return (await res.json()).api_token;
}

function machine(gateway: Gateway, serial: string, token?: string): Promise<MqttClient> {
  return mqtt.connectAsync(gateway.embeddedBroker!.url, {
    protocolVersion: 4,
    clientId: serial,
    username: token === undefined ? undefined : serial,
    password: token,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

/** Rows of the SQLite store, read through a second connection. */
function sqliteRows(dataDir: string, sql: string, ...params: string[]): Record<string, unknown>[] {
  const db = new DatabaseSync(join(dataDir, "gateway.db"), { readOnly: true });
  try {
    return db.prepare(sql).all(...params) as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

Deno.test("embedded mode: a machine's heartbeat and transaction (twice) land in SQLite, stock down once", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_embedded_" });
  const gateway = new Gateway(embeddedConfig(dataDir, uniqueId("gw-")));
  const clients: MqttClient[] = [];
  try {
    await gateway.start();
    const status = await (await gateway.app.request("/mqtt/status", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).json();
    assert.deepEqual(status.backends, { broker: "embedded", queue: "sqlite", database: "sqlite" });
    assert.equal(status.connected, true);
    assert.equal(status.embedded_broker.port, gateway.embeddedBroker!.port);
    assert.equal((await gateway.app.request("/readyz")).status, 200);

    const serial = uniqueId("M-");
    const m = await machine(gateway, serial, await issueToken(gateway, serial));
    clients.push(m);
    const tx = { transaction_id: uniqueId("T"), slot_no: 5, quantity: 1, amount: 35 };
    await m.publishAsync(
      `machine/${serial}/heartbeat`,
      JSON.stringify({ current_page: 1, temperature: 25.5 }),
      {
        qos: 1,
      },
    );
    await m.publishAsync(`machine/${serial}/transaction`, JSON.stringify(tx), { qos: 1 });
    await m.publishAsync(`machine/${serial}/transaction`, JSON.stringify(tx), { qos: 1 });

    await waitFor(
      async () => {
        const jobs = await gateway.metrics.jobs.get();
        return jobs.values.filter((v) => v.labels.outcome === "done").reduce((a, v) => a + v.value, 0) >= 3;
      },
      15_000,
      "three jobs done",
    );
    const [row] = sqliteRows(dataDir, "SELECT * FROM machines WHERE serial_no = ?", serial);
    assert.equal(row?.temperature, 25.5);
    assert.equal(row?.current_page, 1);
    assert.equal(typeof row?.last_heard_at, "number");
    const txRows = sqliteRows(
      dataDir,
      "SELECT * FROM transactions WHERE transaction_id = ?",
      tx.transaction_id,
    );
    assert.equal(txRows.length, 1, "one row for the transaction sent twice");
    const slots = sqliteRows(
      dataDir,
      "SELECT stock FROM machine_slots WHERE serial_no = ? AND slot_no = 5",
      serial,
    );
    assert.deepEqual(slots.map((s) => s.stock), [-1]);

    const detail = await (await api(gateway, "GET", `/api/v1/machines/${serial}`)).json();
    assert.equal(detail.serial_no ?? detail.serialNo, serial);
  } finally {
    await Promise.all(clients.map((c) => c.endAsync()));
    await gateway.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("embedded mode: wrong tokens are refused; spoofed uplink and forged commands are not delivered", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_embedded_" });
  const gateway = new Gateway(embeddedConfig(dataDir, uniqueId("gw-")));
  const clients: MqttClient[] = [];
  try {
    await gateway.start();
    const a = uniqueId("MA-");
    const b = uniqueId("MB-");
    const tokenA = await issueToken(gateway, a);
    const tokenB = await issueToken(gateway, b);

    await assert.rejects(machine(gateway, a, "not-the-token"), (e: { code?: number }) => e.code === 4);
    await assert.rejects(machine(gateway, a, tokenB), (e: { code?: number }) => e.code === 4);
    await assert.rejects(
      machine(gateway, a),
      (e: { code?: number }) => e.code === 5,
      "no anonymous by default",
    );

    const ma = await machine(gateway, a, tokenA);
    const mb = await machine(gateway, b, tokenB);
    clients.push(ma, mb);
    const atB: string[] = [];
    mb.on("message", (topic, payload) => atB.push(`${topic} ${payload}`));
    await mb.subscribeAsync(`machine/${b}/command`, { qos: 1 });

    // A spoofs B's heartbeat and forges a command to B: acknowledged, dropped.
    await ma.publishAsync(`machine/${b}/heartbeat`, JSON.stringify({ current_page: 9, temperature: 99 }), {
      qos: 1,
    });
    await ma.publishAsync(
      `machine/${b}/command`,
      JSON.stringify({ command: "dispense", message_id: "FORGED" }),
      {
        qos: 1,
      },
    );
    await ma.publishAsync(`machine/${a}/heartbeat`, JSON.stringify({ current_page: 2, temperature: 20 }), {
      qos: 1,
    });
    await waitFor(
      () =>
        sqliteRows(dataDir, "SELECT 1 FROM machines WHERE serial_no = ? AND last_heard_at IS NOT NULL", a)
          .length,
      15_000,
      "A's own heartbeat",
    );

    // The gateway's own command reaches B, and nothing else did.
    const sent = await api(gateway, "POST", `/api/v1/machines/${b}/commands`, {
      command: "dispense",
      payload: { slot_no: 1 },
    });
    assert.equal(sent.status, 202);
    const { message_id } = await sent.json();
    await waitFor(() => atB.length > 0, 15_000, "the real command at B");
    assert.equal(atB.length, 1);
    assert.match(atB[0]!, new RegExp(`^machine/${b}/command .*"message_id":"${message_id}"`));
    const [rowB] = sqliteRows(
      dataDir,
      "SELECT last_heard_at, temperature FROM machines WHERE serial_no = ?",
      b,
    );
    assert.deepEqual({ ...rowB }, { last_heard_at: null, temperature: null }, "B never sent a heartbeat");
    assert.ok(gateway.embeddedBroker!.status().dropped >= 2);
    assert.equal(ma.connected, true, "a denied publish does not disconnect the machine");
  } finally {
    await Promise.all(clients.map((c) => c.endAsync()));
    await gateway.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("embedded mode: a job left leased by a killed worker is processed after a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_embedded_" });
  const clientId = uniqueId("gw-");
  const serial = uniqueId("M-");
  const token = "machine-token-for-the-kill-test";
  const tx = { transaction_id: uniqueId("T"), slot_no: 3, quantity: 2, amount: 10 };
  try {
    // 1. An uplink-only gateway takes the message into the durable queue; no worker runs.
    const uplink = new Gateway(embeddedConfig(dataDir, clientId, { GATEWAY_ROLES: "uplink" }));
    try {
      await uplink.start();
      const hash = createHash("sha256").update(token).digest("hex");
      await uplink.store!.setMachineToken(serial, hash, new Date());
      const m = await machine(uplink, serial, token);
      await m.publishAsync(`machine/${serial}/transaction`, JSON.stringify(tx), { qos: 1 });
      await waitFor(
        async () => (await uplink.metrics.acked.get()).values.length > 0,
        10_000,
        "the uplink ack",
      );
      await m.endAsync();
    } finally {
      await uplink.close();
    }

    // 2. Worker slot 0 leases it and dies before acking (no ack, no release).
    const db = SqliteQueue.openDatabase(join(dataDir, "queue.db"));
    const worker = new SqliteQueue(db, "mqtt_incoming_jobs", { consumerId: `${clientId}:worker:0` });
    const leased = await worker.lease(10, 0);
    assert.equal(leased.length, 1);
    assert.equal(JSON.parse(leased[0]!.raw).payload.transaction_id, tx.transaction_id);
    assert.deepEqual(await worker.depth(), { ready: 0, processing: 1, delayed: 0, dead: 0 });
    db.close();

    // 3. The whole gateway restarts on the same DATA_DIR: slot 0 recovers its job and processes it.
    const gateway = new Gateway(embeddedConfig(dataDir, clientId));
    try {
      await gateway.start();
      await waitFor(
        () =>
          sqliteRows(dataDir, "SELECT 1 FROM transactions WHERE transaction_id = ?", tx.transaction_id)
            .length,
        15_000,
        "the recovered transaction",
      );
      const slots = sqliteRows(dataDir, "SELECT stock FROM machine_slots WHERE serial_no = ?", serial);
      assert.deepEqual(slots.map((s) => s.stock), [-2]);
      const status = await (await gateway.app.request("/mqtt/status", {
        headers: { authorization: `Bearer ${gateway.apiToken}` },
      })).json();
      await waitFor(
        async () => {
          const s = await (await gateway.app.request("/mqtt/status", {
            headers: { authorization: `Bearer ${gateway.apiToken}` },
          })).json();
          const depth = s.queues.mqtt_incoming_jobs;
          return depth.processing === 0 && depth.ready === 0 && depth.dead === 0;
        },
        5000,
        "an empty queue",
      );
      assert.deepEqual(status.backends, { broker: "embedded", queue: "sqlite", database: "sqlite" });
    } finally {
      await gateway.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("embedded mode: with MQTT_ALLOW_ANONYMOUS a demo machine without credentials sends heartbeats", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_embedded_" });
  const gateway = new Gateway(embeddedConfig(dataDir, uniqueId("gw-"), { MQTT_ALLOW_ANONYMOUS: "true" }));
  let demo: MqttClient | undefined;
  try {
    await gateway.start();
    const serial = uniqueId("DEMO-");
    demo = await machine(gateway, serial);
    await demo.publishAsync(
      `machine/${serial}/heartbeat`,
      JSON.stringify({ current_page: 3, temperature: 21 }),
      {
        qos: 1,
      },
    );
    const [row] = await waitFor(
      () => {
        const rows = sqliteRows(
          dataDir,
          "SELECT current_page, registered FROM machines WHERE serial_no = ?",
          serial,
        );
        return rows.length ? rows : null;
      },
      15_000,
      "the demo heartbeat",
    );
    assert.deepEqual({ ...row }, { current_page: 3, registered: 0 });
  } finally {
    await demo?.endAsync();
    await gateway.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("embedded mode: setting one variable swaps one backend, without code changes", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_embedded_" });
  const prefix = uniqueId("test:");
  const gateway = new Gateway(embeddedConfig(dataDir, uniqueId("gw-"), {
    REDIS_URL: SERVICES.redis,
    MQTT_INCOMING_QUEUE: `${prefix}:in`,
    MQTT_OUTGOING_QUEUE: `${prefix}:out`,
  }));
  try {
    await gateway.start();
    const status = await (await gateway.app.request("/mqtt/status", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).json();
    assert.deepEqual(status.backends, { broker: "embedded", queue: "redis", database: "sqlite" });
  } finally {
    await gateway.close();
    const { dropRedisKeys } = await import("./support.ts");
    await dropRedisKeys(prefix);
    await Deno.remove(dataDir, { recursive: true });
  }
});

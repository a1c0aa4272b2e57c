/**
 * @module fleet_test
 * The simulated fleet against the real Mosquitto: tokens fetched from the API with the bearer
 * token, one connection per machine, uplink on the contract's topics with `sent_at`, every
 * command answered with an ack, a blast of exactly N messages with redelivered sales counted
 * once, and the CLI's flag checks.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { Fleet, percentile } from "./fleet.ts";
import { parseCli } from "./simulate.ts";
import { SERVICES } from "../../tests/support.ts";

const BROKER = SERVICES.mqtt;

function randomPrefix(): string {
  return `SIMT${crypto.randomUUID().slice(0, 8)}-`;
}

/** A stand-in for the gateway's token and slots routes: records calls, answers 201 / 200. */
function fakeApi() {
  const calls: { serial: string; auth: string | null }[] = [];
  const stocked: { serial: string; auth: string | null; body: unknown }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const slots = /^\/api\/v1\/machines\/([^/]+)\/slots$/.exec(path);
    if (req.method === "PUT" && slots) {
      const serial = decodeURIComponent(slots[1]!);
      stocked.push({ serial, auth: req.headers.get("authorization"), body: await req.json() });
      return Response.json({ serial_no: serial, slots: [] });
    }
    const m = /^\/api\/v1\/machines\/([^/]+)\/token$/.exec(path);
    if (req.method !== "POST" || !m) return new Response("no", { status: 404 });
    calls.push({ serial: decodeURIComponent(m[1]!), auth: req.headers.get("authorization") });
    return Response.json({ serial_no: m[1], api_token: `tok-${m[1]}` }, { status: 201 });
  });
  return { calls, stocked, server, url: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("machines get tokens, connect, send the contract's uplink and answer commands", async () => {
  const prefix = randomPrefix();
  const api = fakeApi();
  const controller = new AbortController();
  const watcher = await mqtt.connectAsync(BROKER, { clientId: `${prefix}watch`, reconnectPeriod: 0 });
  const seen: { topic: string; body: Record<string, unknown> }[] = [];
  watcher.on("message", (topic, payload) => seen.push({ topic, body: JSON.parse(payload.toString()) }));
  await watcher.subscribeAsync([
    `machine/+/heartbeat`,
    `machine/+/transaction`,
    `machine/+/error`,
    `machine/+/command/ack`,
  ], {
    qos: 1,
  });
  const fleet = new Fleet({
    url: BROKER,
    machines: 3,
    serialPrefix: prefix,
    connectRate: 100,
    protocolVersion: 4,
    payloadBytes: 300,
    answerCommands: true,
    api: { url: api.url, token: "bench-token-0123456789" },
    runId: "t1",
    signal: controller.signal,
  });
  try {
    await fleet.connect();
    assert.equal(fleet.stats.connected, 3);
    assert.deepEqual(api.calls.map((c) => c.serial).sort(), [`${prefix}1`, `${prefix}2`, `${prefix}3`]);
    assert.ok(api.calls.every((c) => c.auth === "Bearer bench-token-0123456789"));
    assert.deepEqual(api.stocked, [], "no slot stock given: the gateway's stock is left alone");

    const m = fleet.machines[0]!;
    fleet.publish(m, "heartbeat");
    fleet.publish(m, "transaction");
    fleet.publish(m, "error");
    // Subscriptions are made right after CONNACK: wait for the SUBACK before commanding.
    await new Promise((r) => setTimeout(r, 300));
    await watcher.publishAsync(
      `machine/${m.serial}/command`,
      JSON.stringify({
        target: m.serial,
        command: "dispense",
        payload: { slot_no: 5, sent_at: performance.timeOrigin + performance.now() },
        message_id: "MSG_1",
      }),
      { qos: 1 },
    );
    const deadline = Date.now() + 5000;
    while (seen.filter((s) => s.topic.startsWith(`machine/${prefix}`)).length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const mine = seen.filter((s) => s.topic.startsWith(`machine/${prefix}`));
    const byTopic = Object.fromEntries(mine.map((s) => [s.topic, s.body]));
    const hb = byTopic[`machine/${m.serial}/heartbeat`]!;
    assert.equal(typeof hb.current_page, "number");
    assert.equal(typeof hb.temperature, "number");
    assert.equal(typeof hb.sent_at, "number");
    assert.ok(JSON.stringify(hb).length >= 280, "padded to about --payload-bytes");
    const tx = byTopic[`machine/${m.serial}/transaction`]!;
    assert.match(String(tx.transaction_id), /^Tt1-1$/);
    assert.equal(typeof tx.slot_no, "number");
    assert.equal(typeof tx.amount, "number");
    assert.equal(byTopic[`machine/${m.serial}/error`]!.code, "E101");
    assert.deepEqual(byTopic[`machine/${m.serial}/command/ack`], { message_id: "MSG_1", status: "ok" });
    assert.equal(fleet.stats.commandsReceived, 1);
    assert.equal(fleet.commandLatencies.length, 1);
    assert.ok(fleet.commandLatencies[0]! >= 0 && fleet.commandLatencies[0]! < 5000);
  } finally {
    controller.abort();
    await fleet.close();
    await watcher.endAsync();
    await api.server.shutdown();
  }
});

Deno.test("a blast sends exactly N messages and counts a redelivered sale once", async () => {
  const prefix = randomPrefix();
  const controller = new AbortController();
  const fleet = new Fleet({
    url: BROKER,
    machines: 5,
    serialPrefix: prefix,
    connectRate: 1000,
    protocolVersion: 5,
    payloadBytes: 0,
    answerCommands: false,
    runId: "t2",
    signal: controller.signal,
  });
  try {
    await fleet.connect();
    await fleet.blast({ messages: 200, inflight: 4, transactionShare: 1, duplicateShare: 0.3 });
    const s = fleet.stats;
    assert.equal(s.sent.transaction, 200);
    assert.equal(s.pubacked, 200);
    assert.ok(s.duplicatesSent > 0);
    assert.equal(s.uniqueTransactions + s.duplicatesSent, 200);
    assert.equal(s.uniqueTransactions, fleet.machines.reduce((n, m) => n + m.txSeq, 0));
  } finally {
    controller.abort();
    await fleet.close();
  }
});

Deno.test("the CLI names a bad flag, and percentile picks the nearest rank", () => {
  assert.throws(() => parseCli(["--machines", "0"]), /--machines must be an integer from 1/);
  assert.throws(() => parseCli(["--url", "http://x"]), /--url must be an mqtt/);
  assert.throws(() => parseCli(["--serial-prefix", "a/b"]), /--serial-prefix/);
  const cli = parseCli(["--machines", "50", "--api-token", "t", "--duration", "5"]);
  assert.ok(cli !== "help");
  assert.equal(cli.machines, 50);
  assert.equal(cli.apiToken, "t");
  assert.equal(cli.url, "mqtt://127.0.0.1:2834");
  assert.equal(parseCli(["--help"]), "help");
  assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentile([5, 1, 4, 2, 3], 99), 5);
  assert.ok(Number.isNaN(percentile([], 50)));
});

Deno.test("with slot stock and the API, each machine sets its slots on the gateway before it connects", async () => {
  const prefix = randomPrefix();
  const api = fakeApi();
  const controller = new AbortController();
  const fleet = new Fleet({
    url: BROKER,
    machines: 2,
    serialPrefix: prefix,
    connectRate: 100,
    protocolVersion: 4,
    payloadBytes: 0,
    answerCommands: false,
    api: { url: api.url, token: "bench-token-0123456789" },
    runId: "t4",
    slotStock: 20,
    signal: controller.signal,
  });
  try {
    await fleet.connect();
    assert.equal(fleet.stats.connected, 2);
    assert.equal(fleet.stats.stockFailures, 0);
    const slots = Array.from({ length: 8 }, (_, i) => ({ slot_no: i + 1, stock: 20 }));
    assert.deepEqual(
      api.stocked.sort((a, b) => a.serial.localeCompare(b.serial)),
      [`${prefix}1`, `${prefix}2`].map((serial) => ({
        serial,
        auth: "Bearer bench-token-0123456789",
        body: { slots },
      })),
    );
  } finally {
    controller.abort();
    await fleet.close();
    await api.server.shutdown();
  }
});

Deno.test("with slot stock, no machine sells more than a slot holds; sold out, it heartbeats instead", async () => {
  const prefix = randomPrefix();
  const controller = new AbortController();
  const watcher = await mqtt.connectAsync(BROKER, { clientId: `${prefix}watch`, reconnectPeriod: 0 });
  const sales: { slot_no: number; quantity: number }[] = [];
  watcher.on("message", (_topic, payload) => sales.push(JSON.parse(payload.toString())));
  await watcher.subscribeAsync(`machine/${prefix}1/transaction`, { qos: 1 });
  const fleet = new Fleet({
    url: BROKER,
    machines: 1,
    serialPrefix: prefix,
    connectRate: 1000,
    protocolVersion: 4,
    payloadBytes: 0,
    answerCommands: false,
    runId: "t3",
    slotStock: 2,
    signal: controller.signal,
  });
  try {
    await fleet.connect();
    await fleet.blast({ messages: 30, inflight: 1, transactionShare: 1 });
    const s = fleet.stats;
    assert.equal(s.uniqueQuantity, 16, "8 slots × 2 items, not one more");
    assert.equal(s.sent.transaction + s.sent.heartbeat, 30);
    assert.equal(s.soldOut, s.sent.heartbeat);
    assert.ok(s.soldOut > 0);
    await waitUntil(() => sales.length === s.sent.transaction);
    const perSlot = new Map<number, number>();
    for (const sale of sales) perSlot.set(sale.slot_no, (perSlot.get(sale.slot_no) ?? 0) + sale.quantity);
    assert.deepEqual([...perSlot.values()], Array(8).fill(2));
  } finally {
    controller.abort();
    await fleet.close();
    await watcher.endAsync();
  }
});

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(check(), "in time");
}

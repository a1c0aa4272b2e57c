/**
 * @module embedded_broker_test
 * The embedded aedes broker with a small fake {@link BrokerAuth}: authentication, the topic policy
 * (denied publishes acknowledged and dropped, denied subscriptions refused), anonymous demo clients,
 * start-up gating, reserved client ids, and clean shutdown.
 */
import assert from "node:assert/strict";
import { sleep } from "../lib/sleep.ts";
import mqtt, { type MqttClient } from "mqtt";
import type { AuthnResult, BrokerAuth, MqttAction } from "../auth/broker_auth.ts";
import { anonymousMayUse, EmbeddedBroker, type EmbeddedBrokerOptions } from "./embedded_broker.ts";
import { MqttConnection } from "../mqtt/mqtt_connection.ts";

const TOKENS: Record<string, string> = { "M-1": "token-1", "M-2": "token-2" };
const UPLINK = ["heartbeat", "error", "transaction", "command/ack"];

/** Gateway "gw" / "secret" is the superuser; machines use their token and their own topics only. */
const fakeAuth: BrokerAuth = {
  authenticate(username, password): Promise<AuthnResult> {
    if (username === "gw") {
      return Promise.resolve({ ok: password === "secret", superuser: password === "secret" });
    }
    return Promise.resolve({
      ok: TOKENS[username] !== undefined && TOKENS[username] === password,
      superuser: false,
    });
  },
  authorize(username: string, action: MqttAction, topic: string) {
    if (action === "subscribe") return Promise.resolve(topic === `machine/${username}/command`);
    return Promise.resolve(UPLINK.some((s) => topic === `machine/${username}/${s}`));
  },
};

async function startBroker(options: Partial<EmbeddedBrokerOptions> = {}): Promise<EmbeddedBroker> {
  return await EmbeddedBroker.start({
    host: "127.0.0.1",
    port: 0,
    auth: fakeAuth,
    allowAnonymous: false,
    gated: false,
    reservedClientIds: ["gateway-1"],
    ...options,
  });
}

function connect(broker: EmbeddedBroker, options: mqtt.IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(broker.url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...options,
  });
}

/** The CONNACK return code of a refused connection. */
async function refusedWith(broker: EmbeddedBroker, options: mqtt.IClientOptions): Promise<number> {
  try {
    const client = await connect(broker, options);
    await client.endAsync();
  } catch (error) {
    return (error as { code?: number }).code ?? -1;
  }
  return 0;
}

/** The QoS granted per filter (128: refused); mqtt.js rejects when any filter is refused. */
async function grants(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(
      Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }])),
    );
    return granted.map((g) => g.qos);
  } catch (error) {
    const packet = (error as { packet?: { granted?: (number | { qos: number })[] } }).packet;
    if (!packet?.granted) throw error;
    return packet.granted.map((g) => typeof g === "number" ? g : g.qos);
  }
}

/** Collects the messages a client receives. */
function inbox(client: MqttClient): { topic: string; payload: string }[] {
  const got: { topic: string; payload: string }[] = [];
  client.on("message", (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("embedded broker: listens on a free port and closes idempotently", async () => {
  const broker = await startBroker();
  assert.ok(broker.port > 0);
  assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
  assert.equal(broker.status().listening, true);
  await Promise.all([broker.close(), broker.close()]);
  assert.equal(broker.status().listening, false);
  assert.notEqual(await refusedWith(broker, { clientId: "M-1", username: "M-1", password: "token-1" }), 0);
});

Deno.test("embedded broker: the address in use is a clear error", async () => {
  const first = await startBroker();
  try {
    await assert.rejects(
      startBroker({ port: first.port }),
      new RegExp(`Cannot start the embedded MQTT broker on 127.0.0.1:${first.port}`),
    );
  } finally {
    await first.close();
  }
});

Deno.test("embedded broker: machines connect with serial and token; a wrong token is refused", async () => {
  const broker = await startBroker();
  try {
    const ok = await connect(broker, { clientId: "M-1", username: "M-1", password: "token-1" });
    assert.equal(ok.connected, true);
    await ok.endAsync();
    assert.equal(await refusedWith(broker, { clientId: "M-1", username: "M-1", password: "wrong" }), 4);
    assert.equal(await refusedWith(broker, { clientId: "M-9", username: "M-9", password: "token-1" }), 4);
    assert.equal(await refusedWith(broker, { clientId: "anon" }), 5, "anonymous refused by default");
    assert.equal(broker.status().refused, 3);
  } finally {
    await broker.close();
  }
});

Deno.test("embedded broker: a machine's connect and disconnect are presence changes; the gateway's are not", async () => {
  const changes: string[] = [];
  const broker = await startBroker({
    onPresence: (serial, connected) => changes.push(`${serial}:${connected}`),
  });
  try {
    const gateway = await connect(broker, { clientId: "gateway-1", username: "gw", password: "secret" });
    const first = await connect(broker, { clientId: "M-1", username: "M-1", password: "token-1" });
    await until(() => changes.length === 1, "the machine's connect");
    const second = await connect(broker, { clientId: "M-1b", username: "M-1", password: "token-1" });
    await first.endAsync();
    await sleep(100);
    assert.deepEqual(changes, ["M-1:true"], "still connected through its other connection");
    await second.endAsync();
    await until(() => changes.length === 2, "the machine's disconnect");
    await gateway.endAsync();
    await sleep(50);
    assert.deepEqual(changes, ["M-1:true", "M-1:false"]);
  } finally {
    await broker.close();
  }
});

Deno.test("embedded broker: machines publish only their own uplink; only the gateway sends commands", async () => {
  const broker = await startBroker();
  const gateway = await connect(broker, { clientId: "gateway-1", username: "gw", password: "secret" });
  const m1 = await connect(broker, { clientId: "M-1", username: "M-1", password: "token-1" });
  const m2 = await connect(broker, { clientId: "M-2", username: "M-2", password: "token-2" });
  try {
    const atGateway = inbox(gateway);
    const atM2 = inbox(m2);
    await gateway.subscribeAsync({ "machine/+/heartbeat": { qos: 1 }, "machine/+/transaction": { qos: 1 } });
    assert.deepEqual(await grants(m2, ["machine/M-2/command", "machine/M-1/command"]), [1, 128]);

    // Denied publishes are acknowledged (publishAsync resolves) and dropped; the client stays connected.
    await m1.publishAsync("machine/M-2/heartbeat", "spoofed", { qos: 1 });
    await m1.publishAsync("machine/M-2/command", "forged command", { qos: 1 });
    await m1.publishAsync("machine/M-1/command", "forged to itself", { qos: 1 });
    await m1.publishAsync("$SYS/x", "sys", { qos: 0 });
    await m1.publishAsync("machine/M-1/heartbeat", "mine", { qos: 1 });
    await until(() => atGateway.length > 0, "the allowed heartbeat");
    assert.equal(m1.connected, true);
    assert.deepEqual(atGateway, [{ topic: "machine/M-1/heartbeat", payload: "mine" }]);
    assert.equal(broker.status().dropped, 4);

    await gateway.publishAsync("machine/M-2/command", "dispense", { qos: 1 });
    await until(() => atM2.length > 0, "the gateway's command");
    assert.deepEqual(
      atM2,
      [{ topic: "machine/M-2/command", payload: "dispense" }],
      "no forged command arrived",
    );
  } finally {
    await Promise.all([gateway.endAsync(), m1.endAsync(), m2.endAsync()]);
    await broker.close();
  }
});

Deno.test("embedded broker: the gateway identity is a superuser the policy need not know", async () => {
  const broker = await startBroker({ gateway: { username: "$gateway", password: "internal-secret" } });
  try {
    const gateway = await connect(broker, {
      clientId: "gw-x",
      username: "$gateway",
      password: "internal-secret",
    });
    const m1 = await connect(broker, { clientId: "M-1", username: "M-1", password: "token-1" });
    const atM1 = inbox(m1);
    await m1.subscribeAsync("machine/M-1/command", { qos: 1 });
    await gateway.publishAsync("machine/M-1/command", "go", { qos: 1 });
    await until(() => atM1.length > 0, "the command");
    assert.deepEqual(atM1, [{ topic: "machine/M-1/command", payload: "go" }]);
    await Promise.all([gateway.endAsync(), m1.endAsync()]);
    assert.equal(await refusedWith(broker, { clientId: "gw-y", username: "$gateway", password: "wrong" }), 4);
    assert.equal(await refusedWith(broker, { clientId: "gw-x", username: "M-2", password: "token-2" }), 2);
  } finally {
    await broker.close();
  }
});

Deno.test("embedded broker: nobody else may use the gateway's client id", async () => {
  const broker = await startBroker({ allowAnonymous: true });
  const gateway = await connect(broker, { clientId: "gateway-1", username: "gw", password: "secret" });
  try {
    assert.equal(await refusedWith(broker, { clientId: "gateway-1" }), 2, "anonymous");
    assert.equal(
      await refusedWith(broker, { clientId: "gateway-1", username: "M-1", password: "token-1" }),
      2,
    );
    assert.equal(gateway.connected, true, "the gateway's session was not taken over");
  } finally {
    await gateway.endAsync();
    await broker.close();
  }
});

Deno.test("embedded broker: until admit(), only the gateway may connect", async () => {
  const broker = await startBroker({ gated: true, allowAnonymous: true });
  try {
    assert.equal(await refusedWith(broker, { clientId: "M-1", username: "M-1", password: "token-1" }), 3);
    assert.equal(await refusedWith(broker, { clientId: "anon" }), 3);
    const gateway = await connect(broker, { clientId: "gateway-1", username: "gw", password: "secret" });
    await gateway.endAsync();
    broker.admit();
    const machine = await connect(broker, { clientId: "M-1", username: "M-1", password: "token-1" });
    await machine.endAsync();
  } finally {
    await broker.close();
  }
});

Deno.test("embedded broker: anonymous demo clients act as the machine their topic names", async () => {
  const broker = await startBroker({ allowAnonymous: true });
  const gateway = await connect(broker, { clientId: "gateway-1", username: "gw", password: "secret" });
  const demo = await connect(broker, { clientId: "demo-1" });
  const listener = await connect(broker, { clientId: "demo-2" });
  try {
    const atGateway = inbox(gateway);
    const atListener = inbox(listener);
    await gateway.subscribeAsync({ "machine/+/heartbeat": { qos: 1 } });
    assert.deepEqual(await grants(listener, ["machine/DEMO-1/command", "machine/+/command", "machine/#"]), [
      1,
      128,
      128,
    ]);
    await demo.publishAsync("machine/DEMO-1/command", "forged", { qos: 1 });
    await demo.publishAsync("other/topic", "x", { qos: 1 });
    await demo.publishAsync("machine/bad serial/heartbeat", "x", { qos: 1 });
    await demo.publishAsync("machine/DEMO-1/heartbeat", "{}", { qos: 1 });
    await demo.publishAsync("machine/DEMO-7/heartbeat", "{}", { qos: 1 });
    await until(() => atGateway.length === 2, "two heartbeats");
    assert.deepEqual(atGateway.map((m) => m.topic), ["machine/DEMO-1/heartbeat", "machine/DEMO-7/heartbeat"]);
    await gateway.publishAsync("machine/DEMO-1/command", "real", { qos: 1 });
    await until(() => atListener.length > 0, "the real command");
    assert.deepEqual(atListener, [{ topic: "machine/DEMO-1/command", payload: "real" }]);
  } finally {
    await Promise.all([gateway.endAsync(), demo.endAsync(), listener.endAsync()]);
    await broker.close();
  }
});

Deno.test("anonymousMayUse: uplink of a valid serial, one machine's exact command topic, nothing else", () => {
  assert.equal(anonymousMayUse("publish", "machine/M-1/heartbeat"), true);
  assert.equal(anonymousMayUse("publish", "machine/M-1/command/ack"), true);
  assert.equal(anonymousMayUse("publish", "machine/M-1/command"), false);
  assert.equal(anonymousMayUse("publish", "machine/M 1/heartbeat"), false);
  assert.equal(anonymousMayUse("publish", "mcs/events/deviceService/start"), false);
  assert.equal(anonymousMayUse("subscribe", "machine/M-1/command"), true);
  assert.equal(anonymousMayUse("subscribe", "machine/+/command"), false);
  assert.equal(anonymousMayUse("subscribe", "machine/M-1/heartbeat"), false);
  assert.equal(anonymousMayUse("subscribe", "#"), false);
});

Deno.test("MQTT 3.1.1: the gateway's PUBACK waits for its ack handler, so an unstored message comes again", async () => {
  const broker = await startBroker({ gateway: { username: "$gateway", password: "pw" } });
  const options = {
    url: broker.url,
    clientId: "gateway-1",
    username: "$gateway",
    password: "pw",
    keepalive: 30,
    protocolVersion: 4 as const,
    clean: false,
    sessionExpiry: 300,
    reconnectDelayMs: 100,
    reconnectMaxDelayMs: 200,
  };
  const m1 = await connect(broker, { clientId: "M-1", username: "M-1", password: "token-1" });
  const seen: string[] = [];
  const first = new MqttConnection(options);
  try {
    // Holds the PUBACK forever, like a gateway that dies before the push is stored.
    first.handleAcks(
      () => true,
      (_topic, payload) => seen.push(`first ${new TextDecoder().decode(payload)}`),
    );
    await first.waitConnected();
    await first.subscribe(["machine/+/heartbeat"], 1);
    await m1.publishAsync("machine/M-1/heartbeat", "hb-1", { qos: 1 });
    await until(() => seen.length === 1, "the first delivery");
    await first.close(true);

    const second = new MqttConnection(options);
    try {
      second.handleAcks(() => true, (_topic, payload, _packet, done) => {
        seen.push(`second ${new TextDecoder().decode(payload)}`);
        done();
      });
      await second.waitConnected();
      await until(() => seen.length === 2, "the redelivery to the persistent session");
      assert.deepEqual(seen, ["first hb-1", "second hb-1"]);
    } finally {
      await second.close();
    }
  } finally {
    await first.close(true);
    await m1.endAsync();
    await broker.close();
  }
});

/** MQTT 3.1.1 bytes: a packet type byte, the remaining length, the rest. */
function mqttPacket(first: number, body: number[]): Uint8Array {
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 128;
    length.push(byte);
  } while (n > 0);
  return new Uint8Array([first, ...length, ...body]);
}

function mqttString(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [bytes.length >> 8, bytes.length & 255, ...bytes];
}

/**
 * A subscriber on a raw socket (QoS 0, so nothing to acknowledge) that can stop reading, like a
 * gateway that cannot keep up; counts the PUBLISH packets it has read.
 */
async function rawSubscriber(broker: EmbeddedBroker, filter: string) {
  const { connect: tcpConnect } = await import("node:net");
  const socket = tcpConnect(broker.port, "127.0.0.1");
  let pending = new Uint8Array(0);
  const state = { publishes: 0, subacked: false };
  socket.on("data", (chunk: Uint8Array) => {
    const all = new Uint8Array(pending.length + chunk.length);
    all.set(pending);
    all.set(chunk, pending.length);
    let at = 0;
    for (;;) {
      let length = 0, multiplier = 1, i = at + 1;
      for (; i < all.length; i++) {
        length += (all[i]! & 127) * multiplier;
        multiplier *= 128;
        if ((all[i]! & 128) === 0) break;
      }
      if (i >= all.length || i + 1 + length > all.length) break;
      const type = all[at]! >> 4;
      if (type === 3) state.publishes++;
      if (type === 9) state.subacked = true;
      at = i + 1 + length;
    }
    pending = all.slice(at);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  // CONNECT (clean session, user name and password: the superuser), then SUBSCRIBE QoS 0.
  socket.write(mqttPacket(0x10, [
    ...mqttString("MQTT"),
    4,
    0b11000010,
    0,
    30,
    ...mqttString("raw-gw"),
    ...mqttString("gw"),
    ...mqttString("secret"),
  ]));
  socket.write(mqttPacket(0x82, [0, 1, ...mqttString(filter), 0]));
  await until(() => state.subacked, "SUBACK");
  return { socket, state };
}

Deno.test("embedded broker: machines' publishes held in the broker stay near maxInflight while the subscriber lags", async () => {
  const broker = await startBroker({ maxInflight: 50, allowAnonymous: true });
  const sub = await rawSubscriber(broker, "machine/+/heartbeat");
  // Anonymous demo machines: each may publish as the machine its topic names.
  const machines = await Promise.all(
    Array.from({ length: 40 }, (_, k) => connect(broker, { clientId: `A-${k}` })),
  );
  try {
    sub.socket.pause();
    const payload = "x".repeat(4096);
    const each = 150;
    const total = machines.length * each;
    // Every publish at once: a read of a machine's connection brings many, as from 2,000 machines.
    const sent = machines.flatMap((m, k) =>
      Array.from({ length: each }, () => m.publishAsync(`machine/A-${k}/heartbeat`, payload, { qos: 1 }))
    );
    await until(() => broker.status().reads_postponed > 0, "the gate to hold machines' reads back", 20_000);
    assert.ok(sub.state.publishes < total, "the subscriber has not read everything yet");
    sub.socket.resume();
    await until(() => sub.state.publishes === total, "every message", 30_000);
    await Promise.all(sent);
    const after = broker.status();
    assert.equal(after.inflight, 0);
    // One read can bring more than the limit: its packets are parsed together. Without the gate,
    // every machine's reads were in the broker at once (hundreds).
    assert.ok(after.inflight_peak < 200, `${after.inflight_peak} publishes held at once (limit 50)`);
  } finally {
    sub.socket.destroy();
    await Promise.all(machines.map((m) => m.endAsync()));
    await broker.close();
  }
});

/** A machine on a raw socket (keepalive 0: it never sends anything unasked), connected as M-1. */
async function rawMachine(broker: EmbeddedBroker) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: broker.port });
  const received: number[] = [];
  let closed = false;
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        received.push(...buf.subarray(0, n));
      }
    } catch {
      // reset by the broker: closed as well
    }
    closed = true;
  })();
  await conn.write(mqttPacket(0x10, [
    ...mqttString("MQTT"),
    4,
    0b11000010,
    0,
    0,
    ...mqttString("M-1"),
    ...mqttString("M-1"),
    ...mqttString("token-1"),
  ]));
  await until(() => received.length >= 4, "CONNACK");
  assert.deepEqual(received.splice(0, 4), [0x20, 2, 0, 0]);
  return {
    received,
    get closed() {
      return closed;
    },
    async write(bytes: Uint8Array) {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    },
    async close() {
      if (!closed) conn.close();
      await reading;
    },
  };
}

Deno.test("embedded broker: a 200,000-byte QoS 1 publish sent in one write is acknowledged without a next packet", async () => {
  const broker = await startBroker();
  const machine = await rawMachine(broker);
  try {
    // Written at once, it reaches Deno's socket in several 64 KB reads, the last one during aedes'
    // read of the one before: before the fix its bytes stayed unread until the client sent more.
    const payload = new Array(200_000).fill(0x61);
    await machine.write(mqttPacket(0x32, [...mqttString("machine/M-1/transaction"), 0, 7, ...payload]));
    await until(() => machine.received.length >= 4, "PUBACK (no other packet follows)", 10_000);
    assert.deepEqual(machine.received.slice(0, 4), [0x40, 2, 0, 7]);
    assert.equal(machine.closed, false);
  } finally {
    await machine.close();
    await broker.close();
  }
});

Deno.test("embedded broker: a client announcing a packet over maxPacketBytes is disconnected at once", async () => {
  const broker = await startBroker({ maxPacketBytes: 100_000 });
  const machine = await rawMachine(broker);
  try {
    // The header announces 300,000 bytes; only the first 70,000 are sent.
    const header = mqttPacket(0x32, new Array(300_000).fill(0)).subarray(0, 4);
    const start = new Uint8Array(70_000);
    start.set(header);
    start.set([0, 23, ...new TextEncoder().encode("machine/M-1/transaction"), 0, 8], 4);
    await machine.write(start);
    await until(() => machine.closed, "the broker to close the connection", 10_000);
    assert.equal(machine.received.length, 0, "no PUBACK");
    assert.equal(broker.status().oversized, 1);
    // Up to the limit is fine.
    const again = await rawMachine(broker);
    try {
      await again.write(mqttPacket(0x32, [
        ...mqttString("machine/M-1/transaction"),
        0,
        9,
        ...new Array(90_000)
          .fill(0x62),
      ]));
      await until(() => again.received.length >= 4, "PUBACK", 10_000);
      assert.deepEqual(again.received.slice(0, 4), [0x40, 2, 0, 9]);
    } finally {
      await again.close();
    }
  } finally {
    await machine.close();
    await broker.close();
  }
});

/**
 * @module downlink_test
 * End to end against real Mosquitto + Redis + MariaDB: HTTP or Laravel-style RPUSH → downlink →
 * `machine/{serial}/command` → the machine's ack → status; duplicates, expiry, restarts, order.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Gateway } from "../app/gateway.ts";
import { RedisQueue } from "../queue/redis/redis_queue.ts";
import {
  api,
  commandListener,
  dropMachineKeys,
  rpush,
  testSerial,
  waitForStatus,
} from "./downlink_support.ts";
import {
  machineClient,
  publishJson,
  query,
  SERVICES,
  startGateway,
  type TestEnv,
  testEnv,
  waitFor,
} from "./support.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One test's own environment, a started gateway and a machine listening for its commands; all cleaned up. */
async function withCommandGateway(
  body: (
    f: { t: TestEnv; gateway: Gateway; serial: string; machine: Awaited<ReturnType<typeof commandListener>> },
  ) => Promise<void>,
): Promise<void> {
  const t = await testEnv();
  const gateway = new Gateway(t.config());
  const serial = testSerial();
  const machine = await commandListener(serial);
  try {
    await startGateway(gateway);
    await body({ t, gateway, serial, machine });
  } finally {
    await machine.close();
    await gateway.close();
    await t.cleanup();
    await dropMachineKeys();
  }
}

Deno.test("HTTP command reaches the machine as the contract JSON, and its ack makes it succeeded", () =>
  withCommandGateway(async ({ gateway, serial, machine }) => {
    assert.equal((await api(gateway, "POST", `/api/v1/machines/${serial}/token`)).status, 201);
    const payload = { slot_no: 5, transaction_id: "T202604140001" };
    const accepted = await api(gateway, "POST", `/api/v1/machines/${serial}/commands`, {
      command: "dispense",
      payload,
    });
    assert.equal(accepted.status, 202);
    assert.equal(accepted.json.status, "queued");
    const messageId: string = accepted.json.message_id;
    assert.match(messageId, /^MSG_\d{13}[0-9a-f]{8}$/);

    await waitFor(() => machine.messages.length >= 1, 10_000, "the command on machine/{serial}/command");
    assert.equal(
      machine.messages[0],
      JSON.stringify({ target: serial, command: "dispense", payload, message_id: messageId }),
      "the contract's JSON, in the contract's key order",
    );
    const sent = await waitForStatus(gateway, messageId, "sent");
    assert.ok(sent.sent_at);

    const ack = await machineClient();
    try {
      await publishJson(ack, `machine/${serial}/command/ack`, { message_id: messageId, status: "received" });
      await waitForStatus(gateway, messageId, "delivered");
      await publishJson(ack, `machine/${serial}/command/ack`, {
        message_id: messageId,
        status: "ok",
        detail: { dispensed: 1 },
      });
    } finally {
      await ack.endAsync();
    }
    const done = await waitForStatus(gateway, messageId, "succeeded");
    assert.deepEqual(done.detail, { status: "ok", detail: { dispensed: 1 } });
    assert.ok(done.acked_at);
    assert.equal(done.source, "api");

    const list = await api(gateway, "GET", `/api/v1/machines/${serial}/commands`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.items.map((c: { message_id: string }) => c.message_id), [messageId]);
    assert.equal(machine.messages.length, 1);
  }));

Deno.test("a Laravel-style RPUSH without message_id is delivered with a generated one", () =>
  withCommandGateway(async ({ t, gateway, serial, machine }) => {
    // PHP's json_encode of an empty array is [], which the gateway reads as {}.
    await rpush(t.env.MQTT_OUTGOING_QUEUE!, `{"target":"${serial}","command":"reboot","payload":[]}`);
    await waitFor(() => machine.messages.length >= 1, 10_000, "the pushed command");
    const got = JSON.parse(machine.messages[0]!);
    assert.deepEqual(Object.keys(got), ["target", "command", "payload", "message_id"]);
    assert.equal(got.target, serial);
    assert.equal(got.command, "reboot");
    assert.deepEqual(got.payload, {});
    assert.match(got.message_id, /^MSG_/);
    const row = await waitForStatus(gateway, got.message_id, "sent");
    assert.equal(row.source, "queue");
    assert.equal(row.serial_no, serial);
  }));

Deno.test("the same message_id pushed twice is published once; commands keep their order", () =>
  withCommandGateway(async ({ t, serial, machine }) => {
    const dup = { target: serial, command: "dispense", payload: { slot_no: 1 }, message_id: "MSG_dup_1" };
    const elements = [
      dup,
      dup,
      ...[2, 3, 4, 5].map((n) => ({
        target: serial,
        command: "dispense",
        payload: { slot_no: n },
        message_id: `MSG_o_${n}`,
      })),
      dup,
    ];
    await rpush(t.env.MQTT_OUTGOING_QUEUE!, ...elements);
    await waitFor(() => machine.messages.length >= 5, 10_000, "five distinct commands");
    // Everything pushed has been handled once the queue and processing lists are empty.
    const queue = new RedisQueue(new Redis(SERVICES.redis), t.env.MQTT_OUTGOING_QUEUE!, {
      consumerId: "probe",
    });
    await waitFor(
      async () => {
        const d = await queue.depth();
        return d.ready === 0 && d.processing === 0;
      },
      10_000,
      "the outgoing queue to drain",
    );
    await sleep(300);
    const ids = machine.messages.map((m) => JSON.parse(m).message_id);
    assert.deepEqual(ids, ["MSG_dup_1", "MSG_o_2", "MSG_o_3", "MSG_o_4", "MSG_o_5"]);
    await queue.close();
  }));

Deno.test("commands sent over HTTP reach one machine in the order they were accepted", () =>
  withCommandGateway(async ({ gateway, serial, machine }) => {
    await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await api(gateway, "POST", `/api/v1/machines/${serial}/commands`, {
        command: "set_price",
        payload: { slot_no: i, price: 10 + i },
      });
      assert.equal(r.status, 202);
      ids.push(r.json.message_id);
    }
    await waitFor(() => machine.messages.length >= 8, 10_000, "eight commands");
    assert.deepEqual(machine.messages.map((m) => JSON.parse(m).message_id), ids);
  }));

Deno.test("an expired command is never delivered", async () => {
  const t = await testEnv();
  // Accepting only: the downlink is off, so the command waits past its TTL.
  const acceptor = new Gateway(t.config({ GATEWAY_ROLES: "api" }));
  const sender = new Gateway(t.config({ GATEWAY_ROLES: "downlink,api" }));
  const serial = testSerial();
  const machine = await commandListener(serial);
  try {
    await acceptor.start();
    await api(acceptor, "POST", `/api/v1/machines/${serial}/token`);
    const stale = await api(acceptor, "POST", `/api/v1/machines/${serial}/commands`, {
      command: "dispense",
      payload: { slot_no: 9 },
      ttl_seconds: 1,
    });
    assert.equal(stale.status, 202);
    const expired = await waitForStatus(acceptor, stale.json.message_id, "expired", 5000);
    assert.equal(expired.sent_at, null);
    await acceptor.close();

    await sender.start();
    const fresh = await api(sender, "POST", `/api/v1/machines/${serial}/commands`, {
      command: "dispense",
      payload: { slot_no: 1 },
    });
    await waitFor(() => machine.messages.length >= 1, 10_000, "the fresh command");
    await sleep(300);
    assert.deepEqual(machine.messages.map((m) => JSON.parse(m).message_id), [fresh.json.message_id]);
    const still = await api(sender, "GET", `/api/v1/commands/${stale.json.message_id}`);
    assert.equal(still.json.status, "expired");
    assert.equal(still.json.sent_at, null, "an expired command is never published");
  } finally {
    await machine.close();
    await acceptor.close();
    await sender.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

Deno.test("a gateway restarted between accept and publish still sends the command exactly once", async () => {
  const t = await testEnv();
  const serial = testSerial();
  const machine = await commandListener(serial);
  const acceptor = new Gateway(t.config({ GATEWAY_ROLES: "api" }));
  const restarted = new Gateway(t.config());
  const consumer = `${t.env.MQTT_CLIENT_ID}:downlink`;
  const redis = new Redis(SERVICES.redis);
  try {
    await acceptor.start();
    await api(acceptor, "POST", `/api/v1/machines/${serial}/token`);
    const first = await api(acceptor, "POST", `/api/v1/machines/${serial}/commands`, {
      command: "dispense",
      payload: { slot_no: 1 },
    });
    const second = await api(acceptor, "POST", `/api/v1/machines/${serial}/commands`, {
      command: "dispense",
      payload: { slot_no: 2 },
    });
    await acceptor.close();
    // A downlink that died holding the first command: it sits in the consumer's processing list.
    const dying = new RedisQueue(redis, t.env.MQTT_OUTGOING_QUEUE!, { consumerId: consumer });
    const [held] = await dying.lease(1, 1000);
    assert.equal(JSON.parse(held!.raw).message_id, first.json.message_id);
    await dying.close();

    await startGateway(restarted);
    await waitFor(() => machine.messages.length >= 2, 10_000, "both commands after the restart");
    await sleep(500);
    assert.deepEqual(
      machine.messages.map((m) => JSON.parse(m).message_id),
      [first.json.message_id, second.json.message_id],
    );
    await waitForStatus(restarted, first.json.message_id, "sent");
  } finally {
    redis.disconnect();
    await machine.close();
    await acceptor.close();
    await restarted.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

Deno.test("a command for a machine that never connects ends expired, and acks are checked", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config());
  const absent = testSerial("M-404");
  const other = testSerial("M-002");
  try {
    await startGateway(gateway);
    await api(gateway, "POST", `/api/v1/machines/${absent}/token`);
    const r = await api(gateway, "POST", `/api/v1/machines/${absent}/commands`, {
      command: "reboot",
      ttl_seconds: 2,
    });
    assert.equal(r.status, 202);
    const id = r.json.message_id;
    await waitForStatus(gateway, id, "sent");
    // Another machine cannot ack it.
    const impostor = await machineClient();
    try {
      await publishJson(impostor, `machine/${other}/command/ack`, { message_id: id, status: "ok" });
      // The ack goes through the worker; by the time the sweep runs it would have landed.
      await sleep(500);
      assert.equal((await api(gateway, "GET", `/api/v1/commands/${id}`)).json.status, "sent");
    } finally {
      await impostor.endAsync();
    }
    const expired = await waitForStatus(gateway, id, "expired", 6000);
    assert.ok(expired.sent_at, "it was published, the machine just never answered");
    const rows = await query(t.db.url, "SELECT status FROM machine_commands WHERE message_id = ?", [id]);
    assert.deepEqual(rows, [{ status: "expired" }]);
  } finally {
    await gateway.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

Deno.test("bad input gives a clear 4xx or a dead letter, and nothing behind it gets stuck", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config({ HTTP_MAX_BODY_BYTES: "1024" }));
  const serial = testSerial();
  const machine = await commandListener(serial);
  try {
    await startGateway(gateway);
    await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
    const path = `/api/v1/machines/${serial}/commands`;
    const unknown = await api(gateway, "POST", `/api/v1/machines/${testSerial("NOPE")}/commands`, {
      command: "x",
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, "not_found");
    const badTtl = await api(gateway, "POST", path, { command: "x", ttl_seconds: 0 });
    assert.equal(badTtl.status, 422);
    assert.match(badTtl.json.error.message, /ttl_seconds/);
    assert.equal((await api(gateway, "POST", path, { command: "x", ttl_seconds: "soon" })).status, 422);
    const badJson = await api(gateway, "POST", path, "{not json");
    assert.equal(badJson.status, 400);
    assert.ok(badJson.json.error.code);
    const big = await api(gateway, "POST", path, { command: "x", payload: { blob: "x".repeat(2000) } });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, "payload_too_large");
    const badSerial = await api(gateway, "POST", "/api/v1/machines/bad%20serial/commands", { command: "x" });
    assert.equal(badSerial.status, 422);
    assert.equal((await api(gateway, "GET", "/api/v1/commands/MSG_nope")).status, 404);
    for (const r of [unknown, badTtl, badJson, big]) assert.ok(!JSON.stringify(r.json).includes("    at "));

    await rpush(
      t.env.MQTT_OUTGOING_QUEUE!,
      "{not json",
      { target: "bad serial", command: "x" },
      { target: serial, command: "dispense", payload: { blob: "x".repeat(2000) }, message_id: "MSG_too_big" },
      { target: serial, command: "reboot", payload: {}, message_id: "MSG_after_bad" },
    );
    await waitFor(() => machine.messages.length >= 1, 10_000, "the valid command behind the bad ones");
    assert.equal(JSON.parse(machine.messages[0]!).message_id, "MSG_after_bad");
    const redis = new Redis(SERVICES.redis);
    try {
      const deadKey = `{${t.env.MQTT_OUTGOING_QUEUE}}:dead`;
      await waitFor(async () => await redis.llen(deadKey) >= 3, 5000, "three dead letters");
      await sleep(300);
      const dead = (await redis.lrange(deadKey, 0, -1)).map((s) => JSON.parse(s));
      assert.equal(dead.length, 3);
      assert.deepEqual(dead.slice(0, 2).map((d) => d.job).sort(), [
        '{"target":"bad serial","command":"x"}',
        "{not json",
      ]);
      assert.match(dead[2].reason, /exceeds 1024/);
      assert.equal(
        (await api(gateway, "GET", "/api/v1/commands/MSG_too_big")).status,
        404,
        "never became a command",
      );
    } finally {
      redis.disconnect();
    }
  } finally {
    await machine.close();
    await gateway.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

Deno.test("on MariaDB, an RPUSHed command the database could not store is dead-lettered at once, even held by a dead gateway, and the commands behind it go out", async () => {
  const t = await testEnv();
  const serial = testSerial();
  const machine = await commandListener(serial);
  const gateway = new Gateway(t.config());
  const queueName = t.env.MQTT_OUTGOING_QUEUE!;
  const redis = new Redis(SERVICES.redis);
  const good = (id: string) => ({
    target: serial,
    command: "dispense",
    payload: { slot_no: 1 },
    message_id: id,
  });
  let deep: unknown = {};
  for (let i = 0; i < 40; i++) deep = { a: deep };
  try {
    await rpush(
      queueName,
      good("MSG_before"),
      { target: serial, command: "dispense", payload: deep, message_id: "MSG_deep" },
      good("MSG_between"),
      { target: serial, command: "dispense", payload: { note: "\ud800" }, message_id: "MSG_lone" },
      good("MSG_after"),
    );
    // A downlink that died holding the first two (the poison among them): a restart recovers them.
    const dying = new RedisQueue(redis, queueName, { consumerId: `${t.env.MQTT_CLIENT_ID}:downlink` });
    assert.equal((await dying.lease(2, 1000)).length, 2);
    await dying.close();
    await startGateway(gateway);
    await waitFor(() => machine.messages.length >= 3, 10_000, "the three good commands");
    assert.deepEqual(machine.messages.map((m) => JSON.parse(m).message_id), [
      "MSG_before",
      "MSG_between",
      "MSG_after",
    ]);
    const deadKey = `{${queueName}}:dead`;
    await waitFor(async () => await redis.llen(deadKey) >= 2 || undefined, 5000, "two dead letters");
    const dead = (await redis.lrange(deadKey, 0, -1)).map((s) => JSON.parse(s));
    assert.equal(dead.length, 2);
    assert.match(dead.map((d) => d.reason).join("\n"), /nested deeper than 31 levels[^]*lone surrogate/);
    assert.equal((await api(gateway, "GET", "/api/v1/commands/MSG_deep")).status, 404, "never a command");
    await waitForStatus(gateway, "MSG_after", "sent");
  } finally {
    redis.disconnect();
    await machine.close();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("two gateways running the downlink: each command goes out once, in order", async () => {
  const t = await testEnv();
  const a = new Gateway(t.config({ MQTT_CLIENT_ID: `${t.env.MQTT_CLIENT_ID}-a` }));
  const b = new Gateway(t.config({ MQTT_CLIENT_ID: `${t.env.MQTT_CLIENT_ID}-b` }));
  const serial = testSerial();
  const machine = await commandListener(serial);
  try {
    await startGateway(a);
    await startGateway(b);
    const ids = Array.from({ length: 12 }, (_, i) => `MSG_pair_${i}`);
    await rpush(
      t.env.MQTT_OUTGOING_QUEUE!,
      ...ids.map((id, i) => ({
        target: serial,
        command: "dispense",
        payload: { slot_no: i },
        message_id: id,
      })),
    );
    await waitFor(() => machine.messages.length >= ids.length, 10_000, "twelve commands");
    await sleep(300);
    assert.deepEqual(machine.messages.map((m) => JSON.parse(m).message_id), ids);
  } finally {
    await machine.close();
    await a.close();
    await b.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

/**
 * @module redis_topologies_test
 * The gateway on a real Redis Cluster (three masters, `REDIS_URL=redis+cluster://`) and on a real
 * Sentinel set (master, replica, sentinel; `redis+sentinel://`), both with a password in the URL.
 * On each: transactions from a fleet land exactly once through a `kill -9` of the gateway, bad
 * messages become dead letters, and commands posted to the API reach their machine exactly once
 * (intake, hand-off, downlink lock). On the Sentinel set a `SENTINEL FAILOVER` in the middle of the
 * run loses and doubles nothing: a push counts as stored only once a replica has it (WAIT 1).
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import {
  assertLedgerExact,
  delay,
  fetchText,
  GatewayProcess,
  type GatewaySettings,
  gatewaySettings,
  Mosquitto,
  randomSuffix,
  scenario,
  type ScenarioContext,
  TempDir,
  TestDatabase,
  transactionFleet,
  waitFor,
} from "./support.ts";
import { RedisCluster, RedisSentinelSet } from "./redis_topology.ts";
import { keyPrefix } from "../../queue/redis/key_prefix.ts";

const MESSAGES = 5000;
const MACHINES = 10;
const GARBAGE = 5;
const COMMANDS = 10;

interface Topology {
  url: string;
  depth(queue: string): Promise<{ pending: number; dead: number }>;
  deadLetters(queue: string): Promise<{ job: string; reason: string }[]>;
  logTail(lines?: number): Promise<string>;
}

/** A machine that records the message ids arriving on its command topic. */
async function commandReceiver(ctx: ScenarioContext, brokerUrl: string, serial: string) {
  // Not the fleet machine's client id: the two would take the session from each other.
  const client = mqtt.connect(brokerUrl, {
    clientId: `receiver-${serial}`,
    protocolVersion: 5,
    reconnectPeriod: 200,
  });
  client.on("error", () => {});
  ctx.defer(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())));
  const ids: string[] = [];
  client.on("message", (_topic, payload) => ids.push(JSON.parse(payload.toString()).message_id));
  await waitFor("the command receiver to connect", () => client.connected, {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  await client.subscribeAsync(`machine/${serial}/command`, { qos: 1 });
  return ids;
}

/**
 * POSTs a command and returns the message id it was accepted under. A 503 (the intake's answer
 * while no replica confirms the write: Sentinel, right after a failover, until the demoted master
 * follows the new one) marks that command failed, so the client sends it again under a new id.
 */
async function postCommand(
  gateway: GatewayProcess,
  token: string,
  serial: string,
  id: string,
): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (let attempt = 0;; attempt++) {
    const messageId = attempt === 0 ? id : `${id}-retry${attempt}`;
    const res = await fetch(`${gateway.base}/api/v1/machines/${serial}/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "dispense", payload: { slot_no: 1 }, message_id: messageId }),
    });
    await res.body?.cancel();
    if (res.status === 202) return messageId;
    if (res.status !== 503 || Date.now() > deadline) {
      throw new Error(`POST ${messageId} answered ${res.status}`);
    }
    await delay(250);
  }
}

/**
 * The run both topologies share: a fleet sends, `midRun` happens at a third of the stored
 * transactions (a failover), the gateway is killed and restarted at two thirds, then commands.
 */
async function runOn(
  ctx: ScenarioContext,
  dir: TempDir,
  broker: Mosquitto,
  db: TestDatabase,
  topology: Topology,
  midRun?: () => Promise<string>,
): Promise<void> {
  const token = `topology-token-${randomSuffix(16)}`;
  const settings: GatewaySettings = {
    ...gatewaySettings({ mqttUrl: broker.url, redisUrl: topology.url, databaseUrl: db.url() }),
    extra: { API_TOKEN: token },
  };
  let gateway = await GatewayProcess.start(dir.path, settings, "gateway-0");
  ctx.defer(() => gateway.stop());
  ctx.logs(() => gateway.logTail());
  ctx.logs(() => topology.logTail());

  const { fleet, messages, serials } = await transactionFleet(ctx, broker.url, "RT", MACHINES, MESSAGES);
  const third = Math.floor(MESSAGES / 3);
  const events: string[] = [];

  // First third, and bad messages (not JSON: dead letters at once, never jobs).
  await fleet.send(messages.slice(0, third));
  await fleet.send(
    Array.from({ length: GARBAGE }, (_, i) => ({
      machine: i % MACHINES,
      topic: `machine/${serials[i % MACHINES]}/transaction`,
      payload: `{not json ${i}`,
    })),
  );

  // Downlink: the API's intake, the hand-off into the downlink's processing list (fenced by the
  // lock, whose key shares the queue's slot) and the publish. Before the kill (after it, the lock
  // of the killed gateway holds the downlink back for its TTL) and before the failover (right
  // after it, the intake answers 503 until the replica is back, for seconds).
  const serial = serials[0]!;
  const received = await commandReceiver(ctx, broker.url, serial);
  await waitFor(
    "the machine known (its first sale stored)",
    async () => (await db.query("SELECT 1 FROM machines WHERE serial_no = ?", [serial])).length > 0,
    {
      timeoutMs: 30_000,
      intervalMs: 20,
    },
  );
  const sent: string[] = [];
  for (let i = 0; i < COMMANDS; i++) sent.push(await postCommand(gateway, token, serial, `MSG-topo-${i}`));
  await waitFor(`${COMMANDS} commands at the machine`, () => received.length >= COMMANDS, {
    timeoutMs: 20_000,
  });

  // Second third, with the failover (if any) while it is being sent and stored.
  const second = fleet.send(messages.slice(third, 2 * third));
  if (midRun) events.push(await midRun());
  await second;

  // Last third, with a kill -9 of the gateway once some of it has landed.
  const base = await db.transactionCount();
  const last = fleet.send(messages.slice(2 * third));
  const killAt = Math.min(base + 200, MESSAGES - 1);
  await waitFor(`${killAt} stored`, async () => await db.transactionCount() >= killAt, {
    timeoutMs: 60_000,
    intervalMs: 10,
  });
  await gateway.kill();
  events.push(`kill -9 at ${await db.transactionCount()} of ${MESSAGES} stored`);
  gateway = await GatewayProcess.start(dir.path, settings, "gateway-1");
  await last;
  console.log(`[topology] ${events.join("; ")}`);

  await assertLedgerExact(db, topology, settings.incomingQueue, messages);
  await waitFor(
    `${GARBAGE} dead letters`,
    async () => (await topology.depth(settings.incomingQueue)).dead >= GARBAGE,
  );
  const dead = await topology.deadLetters(settings.incomingQueue);
  assert.equal(dead.length, GARBAGE, "exactly the bad messages are dead letters");
  assert.deepEqual([...received].sort(), [...sent].sort(), "each command arrived once");
  const { body } = await fetchText(`${gateway.base}/readyz`);
  assert.ok(body.length > 0);
}

Deno.test("a Redis Cluster: uplink, dead letters, kill -9 recovery and downlink, nothing lost or doubled", async () => {
  await scenario("redis_cluster", async (ctx) => {
    const dir = await TempDir.create("cluster");
    ctx.defer(() => dir[Symbol.asyncDispose]());
    const broker = await Mosquitto.start(dir.path);
    ctx.defer(() => broker.close());
    const cluster = await RedisCluster.start(dir.path);
    ctx.defer(() => cluster.close());
    const db = await TestDatabase.create();
    ctx.defer(() => db.close());
    await runOn(ctx, dir, broker, db, cluster);
    // Every key of the gateway's queues shares its list's slot: that is what lets the scripts run.
    const keys = await cluster.keys("*");
    const queues = [...new Set(keys.filter((k) => k.startsWith("{")).map((k) => k.slice(1, k.indexOf("}"))))];
    assert.ok(queues.length >= 2, `hash-tagged keys of both queues: ${keys.join(", ")}`);
    await cluster.with(async (redis) => {
      for (const key of keys.filter((k) => k.startsWith("{"))) {
        const list = key.slice(1, key.indexOf("}"));
        assert.equal(keyPrefix(list), `{${list}}`);
        assert.equal(
          await redis.call("CLUSTER", "KEYSLOT", key),
          await redis.call("CLUSTER", "KEYSLOT", list),
          `${key} hashes like ${list}`,
        );
      }
    });
  });
});

Deno.test("a Sentinel set: a failover mid-run and a kill -9 lose and double nothing", async () => {
  await scenario("redis_sentinel", async (ctx) => {
    const dir = await TempDir.create("sentinel");
    ctx.defer(() => dir[Symbol.asyncDispose]());
    const broker = await Mosquitto.start(dir.path);
    ctx.defer(() => broker.close());
    const sentinel = await RedisSentinelSet.start(dir.path);
    ctx.defer(() => sentinel.close());
    const db = await TestDatabase.create();
    ctx.defer(() => db.close());
    await runOn(ctx, dir, broker, db, sentinel, async () => {
      const started = performance.now();
      const { from, to } = await sentinel.failover();
      return `failover ${from} → ${to} in ${Math.round(performance.now() - started)} ms`;
    });
    assert.equal(await sentinel.masterPort(), sentinel.dataPorts[1], "the replica is master now");
  });
});

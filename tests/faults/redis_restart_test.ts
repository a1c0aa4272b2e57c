/**
 * @module redis_restart_test
 * Fault injection: the private Redis holding the queue is killed (-9) and restarted twice while
 * transactions flow. The gateway process stays up: the uplink holds PUBACKs until the push is
 * stored, ioredis keeps commands waiting and resends them, the worker carries on. Redis runs with
 * `appendonly yes` + `appendfsync always`; without persistence a Redis restart loses its queue,
 * so production Redis must be configured durably too (see README, "Fault injection").
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  faultSeed,
  Fleet,
  GatewayProcess,
  gatewaySettings,
  makeTransactions,
  Mosquitto,
  randomSuffix,
  RedisServer,
  scenario,
  seededRandom,
  TempDir,
  TestDatabase,
  waitFor,
} from "./support.ts";

const MESSAGES = 8000;
const MACHINES = 10;

Deno.test("a Redis restart mid-run loses nothing and the gateway carries on", async () => {
  await scenario("redis_restart", async ({ defer, logs }) => {
    const random = seededRandom(faultSeed("redis_restart"));
    const dir = await TempDir.create("redis");
    defer(() => dir[Symbol.asyncDispose]());
    const broker = await Mosquitto.start(dir.path);
    defer(() => broker.close());
    const redis = await RedisServer.start(dir.path, { durable: true });
    defer(() => redis.close());
    const db = await TestDatabase.create();
    defer(() => db.close());

    const settings = gatewaySettings({
      mqttUrl: broker.url,
      redisUrl: redis.url,
      databaseUrl: db.url(),
    });
    const gateway = await GatewayProcess.start(dir.path, settings);
    defer(() => gateway.stop());
    logs(() => gateway.logTail());
    logs(() => redis.logTail());
    logs(() => redis.describe());
    logs(async () => JSON.stringify(await gateway.status(), null, 1));

    const run = randomSuffix(6);
    const serials = Array.from({ length: MACHINES }, (_, i) => `FR${run}-${i}`);
    const fleet = await Fleet.connect(broker.url, serials.map((s) => `machine-${s}`));
    defer(() => fleet.close());
    const messages = makeTransactions(serials, MESSAGES, run);

    // Send in two halves so that traffic is flowing (and backing up) around each restart.
    const first = messages.slice(0, MESSAGES / 2);
    const second = messages.slice(MESSAGES / 2);
    const sending = (async () => {
      await fleet.send(first);
      await fleet.send(second);
    })();
    const restarts: string[] = [];
    for (const fraction of [0.15 + 0.2 * random(), 0.55 + 0.2 * random()]) {
      const threshold = Math.floor(MESSAGES * fraction);
      await waitFor(
        `${threshold} transactions stored`,
        async () => await db.transactionCount() >= threshold,
        {
          timeoutMs: 60_000,
          intervalMs: 20,
        },
      );
      const stored = await db.transactionCount();
      const downMs = 500 + Math.floor(random() * 2000);
      await redis.restart("SIGKILL", downMs);
      restarts.push(`Redis killed at ${stored} stored, down ${downMs} ms`);
      assert.ok(gateway.running, "the gateway survived the Redis restart");
    }
    await sending;
    console.log(`[redis_restart] ${restarts.join("; ")}`);

    await assertLedgerExact(db, redis, settings.incomingQueue, messages, 60_000);
    assert.ok(gateway.running, "the same gateway process did all the work");
    assert.equal((await redis.depth(settings.incomingQueue)).dead, 0, "nothing dead-lettered");
    const status = await gateway.status();
    assert.equal(status.counters.dead_lettered, 0);
    assert.equal(await gateway.healthz(), 200);
  });
});

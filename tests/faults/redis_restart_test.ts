/**
 * @module redis_restart_test
 * Fault injection: the private Redis holding the queue is killed (-9) and restarted twice while
 * transactions flow. The gateway process stays up: the uplink holds PUBACKs until the push is
 * stored, ioredis keeps commands waiting and resends them, the worker carries on. Redis runs with
 * `appendonly yes` + `appendfsync always`; without persistence a Redis restart loses its queue,
 * so production Redis must be configured durably too (see docs/testing.md, "Fault injection").
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  faultSeed,
  scenario,
  seededRandom,
  servicesSettings,
  startGateway,
  startServices,
  transactionFleet,
  waitFor,
} from "./support.ts";

const MESSAGES = 8000;
const MACHINES = 10;

Deno.test("a Redis restart mid-run loses nothing and the gateway carries on", async () => {
  await scenario("redis_restart", async (ctx) => {
    const { logs } = ctx;
    const random = seededRandom(faultSeed("redis_restart"));
    const services = await startServices(ctx, "redis", { redis: { durable: true } });
    const { dir, broker, redis, db } = services;

    const settings = servicesSettings(services);
    const gateway = await startGateway(ctx, dir.path, settings);
    logs(() => redis.logTail());
    logs(() => redis.describe());
    logs(async () => JSON.stringify(await gateway.status(), null, 1));

    const { fleet, messages } = await transactionFleet(ctx, broker.url, "FR", MACHINES, MESSAGES);

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

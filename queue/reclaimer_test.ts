/**
 * @module reclaimer_test
 * The periodic sweep on the real Redis: a consumer that vanishes holding leases (its connection
 * dropped, as a killed process's) has them put back by a live process's sweep within about a TTL,
 * and every job is then leased and acked exactly once; the sweep counts what it put back, and
 * stops with its signal.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { counterValues, createMetrics } from "../lib/metrics.ts";
import { dropRedisKeys, SERVICES } from "../tests/support.ts";
import { RedisQueue } from "./redis/redis_queue.ts";
import { Reclaimer } from "./reclaimer.ts";

const TTL = 300;

Deno.test("a consumer that vanishes holding leases: a live process's sweep puts them back within about a TTL, each then done once", async () => {
  const name = `test_reclaim_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const redis = new Redis(SERVICES.redis, { maxRetriesPerRequest: 1 });
  const gone = new Redis(SERVICES.redis, { maxRetriesPerRequest: 1 });
  const vanishing = new RedisQueue(gone, name, { consumerId: "gw-a:worker:0", aliveTtlMs: TTL });
  const worker = new RedisQueue(redis, name, { consumerId: "gw-b:worker:0", aliveTtlMs: TTL });
  const sweeperQueue = new RedisQueue(redis, name, { consumerId: "gw-b:sweeper", aliveTtlMs: TTL });
  const metrics = createMetrics();
  const stop = new AbortController();
  let sweeping: Promise<void> | undefined;
  try {
    const jobs = Array.from({ length: 20 }, (_, i) => `job-${i}`);
    await worker.push(...jobs);
    const held = await vanishing.lease(5, 0);
    assert.deepEqual(held.map((l) => l.raw), jobs.slice(0, 5));
    gone.disconnect(); // like kill -9: no ack, no close, no more refresh
    const vanishedAt = Date.now();
    sweeping = new Reclaimer(sweeperQueue, metrics).run(TTL, stop.signal);

    // The live worker takes everything there is, as it comes.
    const done: string[] = [];
    const doneAt = new Map<string, number>();
    while (done.length < jobs.length && Date.now() - vanishedAt < 10_000) {
      const leases = await worker.lease(10, 50);
      await worker.ack(leases);
      for (const l of leases) {
        done.push(l.raw);
        doneAt.set(l.raw, Date.now());
      }
    }
    assert.deepEqual([...done].sort(), [...jobs].sort(), "every job done exactly once");
    // Only a lower bound: the jobs may not come back before the vanished consumer's key could lapse
    // (a slow box only makes them later; how soon they come is the loop's 10 s cap above).
    const back = Math.max(...held.map((l) => doneAt.get(l.raw)!)) - vanishedAt;
    assert.ok(back >= TTL / 3, `not before its liveness could lapse (${back} ms)`);
    assert.equal((await counterValues(metrics.reclaimed, "queue")).by[name], 5);
    assert.deepEqual(await worker.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
    assert.equal(await redis.sismember(`{${name}}:consumers`, "gw-a:worker:0"), 0, "gone from the set");
  } finally {
    stop.abort();
    await sweeping;
    await Promise.all([vanishing, worker, sweeperQueue].map((q) => q.close()));
    await dropRedisKeys(name);
    await redis.quit();
  }
});

Deno.test("the sweep goes on through a failed round and ends with its signal", async () => {
  const name = `test_reclaim_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const redis = new Redis(SERVICES.redis, { maxRetriesPerRequest: 1 });
  const queue = new RedisQueue(redis, name, { consumerId: "s", aliveTtlMs: TTL });
  let calls = 0;
  const reclaim = queue.reclaim.bind(queue);
  queue.reclaim = () => {
    calls++;
    return calls === 1 ? Promise.reject(new Error("Redis is down")) : reclaim();
  };
  const stop = new AbortController();
  try {
    const run = new Reclaimer(queue).run(60, stop.signal);
    for (let i = 0; i < 100 && calls < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(calls >= 3, `swept again after a failure (${calls} rounds)`);
    stop.abort();
    await run;
    const after = calls;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(calls, after, "no sweep after the signal");
  } finally {
    stop.abort();
    await queue.close();
    await redis.quit();
  }
});

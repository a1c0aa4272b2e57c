/**
 * @module redis_queue_test
 * RedisQueue behaviour beyond the conformance suite: a job stranded in the consumer's processing
 * list (a BLMOVE that Redis executed but whose reply was lost in a restart, then sent again by
 * ioredis) goes back to the queue at the next lease, not only at the next process start.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisQueue } from "./redis_queue.ts";

const REDIS_URL = "redis://127.0.0.1:6379/0";

async function withQueue(
  fn: (redis: Redis, queue: RedisQueue, name: string) => Promise<void>,
): Promise<void> {
  const name = `test_rq_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const queue = new RedisQueue(redis, name, { consumerId: "c1" });
  try {
    await fn(redis, queue, name);
  } finally {
    await queue.close();
    const keys = await redis.keys(`${name}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
}

Deno.test("a job stranded in processing goes back once the consumer holds no lease", async () => {
  await withQueue(async (redis, queue, name) => {
    await queue.push("a", "b", "c");
    const [a] = await queue.lease(1, 100);
    assert.equal(a?.raw, "a");
    // What a lost BLMOVE reply leaves behind: "b" moved to our processing list, never returned.
    await redis.lmove(name, `${name}:processing:c1`, "LEFT", "LEFT");
    // While "a" is in hand, nothing is swept: it would be taken twice.
    const [c] = await queue.lease(1, 100);
    assert.equal(c?.raw, "c");
    assert.equal(await redis.llen(`${name}:processing:c1`), 3);
    await queue.ack([a!, c!]);
    // Nothing in hand: "b" goes back and is leased again.
    const again = await queue.lease(10, 100);
    assert.deepEqual(again.map((l) => l.raw), ["b"]);
    await queue.ack(again);
    assert.equal(await redis.llen(`${name}:processing:c1`), 0);
    assert.deepEqual(await queue.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
  });
});

Deno.test("leases handed back by retry, release and dead-letter count as no longer in hand", async () => {
  await withQueue(async (redis, queue, name) => {
    await queue.push("a", "b", "c", "d");
    const [a, b, c] = await queue.lease(3, 100);
    await queue.retry(a!, 60_000);
    await queue.release([b!]);
    await queue.deadLetter(c!, "bad");
    await redis.lmove(name, `${name}:processing:c1`, "RIGHT", "LEFT"); // strands "d"
    const leased = await queue.lease(10, 100);
    assert.deepEqual(leased.map((l) => l.raw).sort(), ["b", "d"]);
  });
});

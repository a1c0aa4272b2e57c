/**
 * @module redis_queue_test
 * RedisQueue behaviour beyond the conformance suite: a job stranded in the consumer's processing
 * list (a BLMOVE that Redis executed but whose reply was lost in a restart, then sent again by
 * ioredis) goes back to the queue at the next lease, not only at the next process start; the
 * hand-off (`pushLeased`, `interrupt`) the downlink's fast lane uses; and the liveness key and the
 * sweep (`reclaim`) seen in Redis: refreshed without traffic, left to expire after close, sweeps on
 * several connections at once.
 */
import assert from "node:assert/strict";
import { SERVICES } from "../../tests/support.ts";
import { Redis } from "ioredis";
import { RedisQueue } from "./redis_queue.ts";
import { sleep } from "../../lib/sleep.ts";

const REDIS_URL = SERVICES.redis;

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
    const keys = await redis.keys(`*${name}*`);
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
    await redis.lmove(name, `{${name}}:processing:c1`, "LEFT", "LEFT");
    // While "a" is in hand, nothing is swept: it would be taken twice.
    const [c] = await queue.lease(1, 100);
    assert.equal(c?.raw, "c");
    assert.equal(await redis.llen(`{${name}}:processing:c1`), 3);
    await queue.ack([a!, c!]);
    // Nothing in hand: "b" goes back and is leased again.
    const again = await queue.lease(10, 100);
    assert.deepEqual(again.map((l) => l.raw), ["b"]);
    await queue.ack(again);
    assert.equal(await redis.llen(`{${name}}:processing:c1`), 0);
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
    await redis.lmove(name, `{${name}}:processing:c1`, "RIGHT", "LEFT"); // strands "d"
    const leased = await queue.lease(10, 100);
    assert.deepEqual(leased.map((l) => l.raw).sort(), ["b", "d"]);
  });
});

/** Resolves with `p`, or fails the test after `ms` (a hang, not a timing check). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(what)), ms));
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

Deno.test("pushLeased: into the consumer's processing list when nothing waits, appended when something does", async () => {
  await withQueue(async (redis, queue, name) => {
    const taken = await queue.pushLeased(["a", "b"]);
    assert.deepEqual(taken?.map((l) => [l.raw, l.attempts]), [["a", 0], ["b", 0]]);
    assert.equal(await redis.llen(name), 0);
    assert.deepEqual(await queue.depth(), { ready: 0, processing: 2, delayed: 0, dead: 0 });
    await queue.ack(taken!);
    assert.deepEqual(await queue.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });

    // A job waits: the hand-off must not overtake it, so the raws go behind it.
    await queue.push("c");
    assert.equal(await queue.pushLeased(["d", "e"]), null);
    assert.deepEqual(await redis.lrange(name, 0, -1), ["c", "d", "e"]);
    assert.deepEqual((await queue.lease(10, 100)).map((l) => l.raw), ["c", "d", "e"]);
  });
});

Deno.test("pushLeased: only while the fence holds", async () => {
  await withQueue(async (redis, queue, name) => {
    const fence = { key: `{${name}}:leader`, value: "me" };
    assert.equal(await queue.pushLeased(["a"], fence), null, "no lock held");
    assert.deepEqual(await redis.lrange(name, 0, -1), ["a"]);
    await redis.del(name);
    await redis.set(fence.key, "someone else");
    assert.equal(await queue.pushLeased(["b"], fence), null, "another consumer holds the lock");
    await redis.del(name);
    await redis.set(fence.key, "me");
    assert.deepEqual((await queue.pushLeased(["c"], fence))?.map((l) => l.raw), ["c"]);
  });
});

Deno.test("pushLeased with append: false writes nothing when it cannot hand over", async () => {
  await withQueue(async (redis, queue, name) => {
    await queue.push("a");
    assert.equal(await queue.pushLeased(["b"], undefined, { append: false }), null);
    assert.deepEqual(await redis.lrange(name, 0, -1), ["a"]);
    assert.deepEqual(await queue.depth(), { ready: 1, processing: 0, delayed: 0, dead: 0 });
  });
});

Deno.test("interrupt ends a waiting lease; what its wait moves later comes first, before a hand-off", async () => {
  await withQueue(async (redis, queue, name) => {
    const waiting = queue.lease(10, 60_000);
    // Let the lease reach its blocking wait.
    for (let i = 0; i < 200 && !(await redis.client("LIST") as string).includes("cmd=blmove"); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    queue.interrupt();
    assert.deepEqual(await within(waiting, 10_000, "the interrupted lease did not return"), []);
    // The wait goes on and takes "x", pushed by a producer before the hand-off of "y".
    await redis.rpush(name, "x");
    for (let i = 0; i < 200 && await redis.llen(`{${name}}:woken:c1`) === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await redis.llen(name), 0);
    const taken = await queue.pushLeased(["y"]);
    assert.deepEqual(taken?.map((l) => l.raw), ["x", "y"]);
    assert.deepEqual(await queue.depth(), { ready: 0, processing: 2, delayed: 0, dead: 0 });
    await queue.ack(taken!);
    assert.deepEqual(await queue.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
  });
});

Deno.test("what a blocking wait moved goes back with the leases on recover, in order", async () => {
  await withQueue(async (redis, queue, name) => {
    await queue.push("a", "b", "c", "d");
    assert.deepEqual((await queue.lease(2, 100)).map((l) => l.raw), ["a", "b"]);
    await redis.lmove(name, `{${name}}:woken:c1`, "LEFT", "LEFT"); // a wait that moved "c"
    const restarted = new RedisQueue(redis, name, { consumerId: "c1" });
    try {
      assert.equal(await restarted.recover(), 3);
      assert.deepEqual(await redis.lrange(name, 0, -1), ["a", "b", "c", "d"]);
    } finally {
      await restarted.close();
    }
  });
});

Deno.test("the gateway's keys share the list's hash slot: {Q}:processing, {Q}:delayed, {Q}:dead …", async () => {
  await withQueue(async (redis, queue, name) => {
    await queue.push("a", "b");
    const [a, b] = await queue.lease(2, 100);
    await queue.retry(a!, 60_000);
    await queue.deadLetter(b!, "bad");
    const keys = (await redis.keys(`*${name}*`)).sort();
    assert.deepEqual(keys, [
      `{${name}}:attempts`,
      `{${name}}:consumer:c1`,
      `{${name}}:consumers`,
      `{${name}}:dead`,
      `{${name}}:delayed`,
    ]);
  });
});

Deno.test("recover() takes over what the old key layout (Q:processing:…, no hash tag) left", async () => {
  await withQueue(async (redis, queue, name) => {
    // An older gateway's keys: a dead consumer's lease and woken job, our own slot's lease from
    // before the upgrade, a live older consumer's lease, retries, attempt counts, dead letters.
    await redis.rpush(name, "ready");
    await redis.sadd(`${name}:consumers`, "gone", "c1", "alive");
    await redis.lpush(`${name}:processing:gone`, "g1", "g2"); // g2 is its newest lease
    await redis.lpush(`${name}:woken:gone`, "gw");
    await redis.lpush(`${name}:processing:c1`, "mine");
    await redis.set(`${name}:consumer:alive`, "1", "PX", 30_000);
    await redis.lpush(`${name}:processing:alive`, "busy");
    await redis.zadd(`${name}:delayed`, Date.now() - 1, "n1:due", Date.now() + 60_000, "n2:later");
    await redis.hset(`${name}:attempts`, "h1", "2");
    await redis.rpush(`${name}:dead`, JSON.stringify({ job: "old-dead", reason: "x" }));
    await redis.rpush(`{${name}}:dead`, JSON.stringify({ job: "new-dead", reason: "y" }));
    await redis.hset(`{${name}}:attempts`, "h1", "1");

    const moved = await queue.recover();
    assert.equal(moved, 4, "gw, g1, g2 and mine are put back");
    const ready = await redis.lrange(name, 0, -1);
    assert.deepEqual([...ready].sort(), ["g1", "g2", "gw", "mine", "ready"]);
    assert.deepEqual(
      await redis.lrange(`${name}:processing:alive`, 0, -1),
      ["busy"],
      "a live consumer keeps its lease",
    );
    assert.deepEqual(await redis.smembers(`${name}:consumers`), ["alive"]);
    for (const key of ["processing:gone", "woken:gone", "processing:c1", "delayed", "attempts", "dead"]) {
      assert.equal(await redis.exists(`${name}:${key}`), 0, `${name}:${key} is gone`);
    }
    assert.deepEqual(await redis.zrange(`{${name}}:delayed`, "0", "-1"), ["n1:due", "n2:later"]);
    assert.equal(await redis.hget(`{${name}}:attempts`, "h1"), "3", "attempt counts add up");
    const dead = (await redis.lrange(`{${name}}:dead`, 0, -1)).map((s) => JSON.parse(s).job);
    assert.deepEqual(dead, ["old-dead", "new-dead"], "old dead letters first");

    // And the queue works on as usual: the due retry is promoted and everything is leased once.
    const leased = (await queue.lease(10, 100)).map((l) => l.raw).sort();
    assert.deepEqual(leased, ["due", "g1", "g2", "gw", "mine", "ready"]);
    assert.equal((await queue.depth()).dead, 2);
  });
});

Deno.test("with replicas: 1, a push that no replica acknowledges fails (the uplink then stores it again)", async () => {
  await withQueue(async (redis, _queue, name) => {
    // The local Redis has no replica: WAIT 1 answers 0 after REPLICA_WAIT_MS.
    const waiting = new RedisQueue(redis, name, { consumerId: "w", replicas: 1 });
    await assert.rejects(() => waiting.push("a"), /reached 0 of 1 replica/);
    await assert.rejects(() => waiting.deadLetter(null, "bad", "raw"), /reached 0 of 1 replica/);
    // The master has them (a retry may double a job; the handlers apply it once).
    assert.deepEqual(await redis.lrange(name, 0, -1), ["a"]);
    await waiting.close();
  });
});

Deno.test("close({ handBack }) puts a leaving consumer's unacked leases back at the head; a plain close keeps them for recover()", async () => {
  await withQueue(async (redis, queue, name) => {
    await queue.push("a", "b", "c");
    const leased = await queue.lease(2, 100);
    assert.deepEqual(leased.map((l) => l.raw), ["a", "b"]);
    const crashed = new RedisQueue(redis, name, { consumerId: "c2" });
    const [c] = await crashed.lease(1, 100);
    assert.equal(c?.raw, "c");
    await crashed.close(); // as after a crash: "c" waits in c2's processing list
    assert.deepEqual(await redis.lrange(name, 0, -1), []);
    assert.deepEqual(await redis.lrange(`{${name}}:processing:c2`, 0, -1), ["c"]);
    await queue.close({ handBack: true }); // c1 leaves for good
    assert.deepEqual((await redis.lrange(name, 0, -1)).sort(), ["a", "b"]);
    assert.equal(await redis.llen(`{${name}}:processing:c1`), 0);
  });
});

Deno.test("the liveness key lives on without traffic while the consumer is open, and expires after close", async () => {
  await withQueue(async (redis, _queue, name) => {
    const q = new RedisQueue(redis, name, { consumerId: "idle", aliveTtlMs: 300 });
    const alive = `{${name}}:consumer:idle`;
    try {
      assert.equal(await redis.exists(alive), 0, "a handle that never leased is no consumer");
      assert.deepEqual(await q.lease(1, 0), []);
      assert.equal(await redis.sismember(`{${name}}:consumers`, "idle"), 1);
      for (let i = 0; i < 6; i++) {
        await sleep(150); // 900 ms in all: three TTLs without one queue operation
        assert.equal(await redis.exists(alive), 1, `alive after ${(i + 1) * 150} ms idle`);
      }
      assert.ok(await redis.pttl(alive) > 100, "refreshed about every third of the TTL");
    } finally {
      await q.close();
    }
    await q.close(); // idempotent
    await sleep(450);
    assert.equal(await redis.exists(alive), 0, "no refresh after close: the key expired");
  });
});

Deno.test("reclaim checks liveness inside its script: a listed consumer whose key is back keeps its lists", async () => {
  await withQueue(async (redis, queue, name) => {
    const k = (what: string) => `{${name}}:${what}`;
    // "back" is listed and holds a lease and a woken job; its liveness key is set again (it came
    // back to life after a sweep listed it); "gone" has the same lists and no key.
    await redis.sadd(k("consumers"), "back", "gone");
    for (const c of ["back", "gone"]) {
      await redis.lpush(k(`processing:${c}`), `${c}-1`, `${c}-2`);
      await redis.lpush(k(`woken:${c}`), `${c}-w`);
    }
    await redis.set(k("consumer:back"), "1", "PX", 10_000);
    assert.deepEqual(await queue.reclaim(), { consumers: [{ consumer: "gone", jobs: 3 }], heldByOthers: 3 });
    assert.deepEqual(await redis.lrange(name, 0, -1), ["gone-1", "gone-2", "gone-w"]);
    assert.equal(await redis.llen(k("processing:back")), 2);
    assert.equal(await redis.llen(k("woken:back")), 1);
    assert.deepEqual((await redis.smembers(k("consumers"))).sort(), ["back"], "the dead one leaves the set");
  });
});

Deno.test("sweeps on separate connections at once move each job of the dead consumers once", async () => {
  await withQueue(async (redis, queue, name) => {
    const jobs = Array.from({ length: 300 }, (_, i) => `j${i}`);
    await queue.push(...jobs);
    // Ten consumers lease 30 each, then die (their connection is dropped: no ack, no refresh).
    const dying = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const dead = Array.from(
      { length: 10 },
      (_, i) => new RedisQueue(dying, name, { consumerId: `d${i}`, aliveTtlMs: 300 }),
    );
    for (const d of dead) assert.equal((await d.lease(30, 0)).length, 30);
    dying.disconnect();
    await sleep(450);
    const connections = Array.from({ length: 4 }, () => new Redis(REDIS_URL, { maxRetriesPerRequest: 1 }));
    const sweepers = connections.map((c, i) =>
      new RedisQueue(c, name, { consumerId: `s${i}`, aliveTtlMs: 300 })
    );
    try {
      const results = await Promise.all(sweepers.map((s) => s.reclaim()));
      const moved = results.flatMap((r) => r.consumers);
      assert.equal(moved.reduce((n, c) => n + c.jobs, 0), 300);
      assert.deepEqual(moved.map((c) => c.consumer).sort(), dead.map((_, i) => `d${i}`).sort(), "each once");
      const ready = await redis.lrange(name, 0, -1);
      assert.equal(ready.length, 300);
      assert.deepEqual([...ready].sort(), [...jobs].sort(), "every job once");
      for (let i = 0; i < 10; i++) {
        // Each consumer's jobs together and in their order, whichever sweep moved them.
        const own = jobs.slice(i * 30, i * 30 + 30);
        const at = ready.indexOf(own[0]!);
        assert.deepEqual(ready.slice(at, at + 30), own);
      }
    } finally {
      await Promise.all([...dead, ...sweepers].map((q) => q.close()));
      for (const c of connections) await c.quit();
    }
  });
});

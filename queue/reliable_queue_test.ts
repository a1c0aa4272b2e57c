/**
 * @module reliable_queue_test
 * One conformance suite for every {@link ReliableQueue}: the same cases run against RedisQueue (the
 * real Redis on 127.0.0.1:6379, a random queue name whose keys are deleted after) and SqliteQueue
 * (a file in a temporary directory), so the embedded queue cannot drift from the production one.
 */
import assert from "node:assert/strict";
import { SERVICES } from "../tests/support.ts";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { Redis } from "ioredis";
import { sleep } from "../lib/sleep.ts";
import { RedisCluster, RedisSentinelSet } from "../tests/faults/redis_topology.ts";
import { openRedis, type RedisClient } from "./redis/open_redis.ts";
import { RedisQueue } from "./redis/redis_queue.ts";
import type { Lease, ReliableQueue } from "./reliable_queue.ts";
import { SqliteQueue } from "./sqlite/sqlite_queue.ts";

const REDIS_URL = SERVICES.redis;

interface Harness {
  readonly name: string;
  /** A consumer of the harness's queue. */
  consumer(id: string, options?: { aliveTtlMs?: number }): ReliableQueue;
  /** Like a killed process: drops every consumer and connection without acking, then reconnects. */
  crash(): Promise<void>;
  cleanup(): Promise<void>;
}

type Backend = { kind: "redis" | "sqlite"; open(): Promise<Harness> };

function queueName(): string {
  return `test_q_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** The suite on another topology: a queue of `url` per case (Cluster, Sentinel). */
function topologyBackend(url: string, keys: (pattern: string) => Promise<string[]>, replicas = 0): Backend {
  const connect = () => openRedis(url, { maxRetriesPerRequest: 1 });
  return {
    kind: "redis",
    // deno-lint-ignore require-await
    async open() {
      const name = queueName();
      let redis: RedisClient = connect();
      let queues: RedisQueue[] = [];
      return {
        name,
        consumer(id, options) {
          const q = new RedisQueue(redis, name, { consumerId: id, replicas, ...options });
          queues.push(q);
          return q;
        },
        async crash() {
          await Promise.all(queues.map((q) => q.close()));
          queues = [];
          redis.disconnect();
          redis = connect();
        },
        async cleanup() {
          await Promise.all(queues.map((q) => q.close()));
          for (const key of await keys(`*${name}*`)) await redis.del(key);
          await redis.quit();
        },
      };
    },
  };
}

const redisBackend: Backend = {
  kind: "redis",
  // deno-lint-ignore require-await
  async open() {
    const name = queueName();
    let redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    let queues: RedisQueue[] = [];
    return {
      name,
      consumer(id, options) {
        const q = new RedisQueue(redis, name, { consumerId: id, ...options });
        queues.push(q);
        return q;
      },
      async crash() {
        await Promise.all(queues.map((q) => q.close()));
        queues = [];
        redis.disconnect();
        redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      },
      async cleanup() {
        await Promise.all(queues.map((q) => q.close()));
        const keys = await redis.keys(`*${name}*`);
        if (keys.length > 0) await redis.del(...keys);
        await redis.quit();
      },
    };
  },
};

const sqliteBackend: Backend = {
  kind: "sqlite",
  async open() {
    const name = queueName();
    const dir = await Deno.makeTempDir({ prefix: "gw_queue_" });
    const path = join(dir, "queue.db");
    let db: DatabaseSync = SqliteQueue.openDatabase(path);
    let queues: SqliteQueue[] = [];
    return {
      name,
      consumer(id, options) {
        const q = new SqliteQueue(db, name, { consumerId: id, pollMs: 20, ...options });
        queues.push(q);
        return q;
      },
      async crash() {
        await Promise.all(queues.map((q) => q.close()));
        queues = [];
        db.close();
        db = SqliteQueue.openDatabase(path);
      },
      async cleanup() {
        await Promise.all(queues.map((q) => q.close()));
        db.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
};

const raws = (leases: readonly Lease[]) => leases.map((l) => l.raw);
const job = (n: number) => JSON.stringify({ type: "heartbeat", serial_no: `M-${n}`, payload: { n } });

type Case = (h: Harness, backend: Backend["kind"]) => Promise<void>;

const cases: Record<string, Case> = {
  "leases in FIFO order, exactly the pushed strings": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2));
    await q.push(job(3));
    const leases = await q.lease(10, 0);
    assert.deepEqual(raws(leases), [job(1), job(2), job(3)]);
    assert.deepEqual(leases.map((l) => l.attempts), [0, 0, 0]);
  },

  "lease takes at most max": async (h) => {
    const q = h.consumer("c1");
    await q.push(...[1, 2, 3, 4, 5].map(job));
    assert.deepEqual(raws(await q.lease(2, 0)), [job(1), job(2)]);
    assert.deepEqual(raws(await q.lease(10, 0)), [job(3), job(4), job(5)]);
    assert.deepEqual(await q.lease(10, 0), []);
  },

  "a blocking lease returns a job pushed while it waits": async (h) => {
    const q = h.consumer("c1");
    const producer = h.consumer("producer");
    const pending = q.lease(10, 5000);
    await sleep(50);
    await producer.push(job(1));
    assert.deepEqual(raws(await pending), [job(1)]);
  },

  "two consumers never lease the same job": async (h) => {
    const a = h.consumer("a");
    const b = h.consumer("b");
    await a.push(...[1, 2, 3, 4].map(job));
    const [la, lb] = [await a.lease(2, 0), await b.lease(10, 0)];
    assert.deepEqual([...raws(la), ...raws(lb)], [1, 2, 3, 4].map(job));
    assert.equal(la.length, 2);
  },

  "ack removes the job for good": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2));
    const leases = await q.lease(10, 0);
    await q.ack(leases);
    assert.deepEqual(await q.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
    assert.equal(await q.recover(), 0);
    assert.deepEqual(await q.lease(10, 0), []);
  },

  "retry comes back after the delay, at the tail, with the attempt counted": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2));
    const [first] = await q.lease(1, 0);
    const retriedAt = Date.now();
    await q.retry(first!, 300);
    assert.deepEqual(raws(await q.lease(10, 0)), [job(2)], "the retried job waits for its delay");
    const depth = await q.depth();
    assert.equal(depth.delayed, 1);
    assert.equal(depth.processing, 1);
    const [again] = await q.lease(10, 3000);
    assert.ok(Date.now() - retriedAt >= 250, "not before its delay");
    assert.equal(again!.raw, job(1));
    assert.equal(again!.attempts, 1);
    await q.retry(again!, 0);
    const [third] = await q.lease(10, 2000);
    assert.equal(third!.attempts, 2);
  },

  "a retried job goes behind the jobs already waiting": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2));
    const [first] = await q.lease(1, 0);
    await q.retry(first!, 0);
    await sleep(5);
    assert.deepEqual(raws(await q.lease(10, 1000)), [job(2), job(1)]);
  },

  "retry with countAttempt false does not use up an attempt": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1));
    const [a] = await q.lease(1, 0);
    await q.retry(a!, 0, { countAttempt: false, error: "database down" });
    const [b] = await q.lease(1, 2000);
    assert.equal(b!.attempts, 0);
    await q.retry(b!, 0);
    const [c] = await q.lease(1, 2000);
    assert.equal(c!.attempts, 1);
    await q.retry(c!, 0, { countAttempt: false });
    const [d] = await q.lease(1, 2000);
    assert.equal(d!.attempts, 1);
  },

  "release puts jobs back at the head, in order, without an attempt": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2), job(3));
    const leases = await q.lease(2, 0);
    await q.release(leases);
    const again = await q.lease(10, 0);
    assert.deepEqual(raws(again), [job(1), job(2), job(3)]);
    assert.deepEqual(again.map((l) => l.attempts), [0, 0, 0]);
  },

  "dead letters keep the job, the reason and the attempts": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2));
    const [a] = await q.lease(1, 0);
    await q.retry(a!, 0);
    const [b] = (await q.lease(10, 2000)).filter((l) => l.raw === job(1));
    assert.equal(b!.attempts, 1);
    await q.deadLetter(b!, "heartbeat job failed 2 times; last error: boom");
    await q.deadLetter(null, "Cannot parse heartbeat from M-9: bad JSON", "{not json");
    const dead = await q.deadLetters();
    assert.equal(dead.length, 2);
    assert.deepEqual(
      dead.map(({ job, reason, attempts }) => ({ job, reason, attempts })),
      [
        { job: job(1), reason: "heartbeat job failed 2 times; last error: boom", attempts: 2 },
        { job: "{not json", reason: "Cannot parse heartbeat from M-9: bad JSON", attempts: 0 },
      ],
    );
    assert.ok(!Number.isNaN(Date.parse(dead[0]!.failed_at)));
    assert.deepEqual((await q.deadLetters(1)).length, 1);
    const depth = await q.depth();
    assert.equal(depth.dead, 2);
    assert.equal(depth.processing, 1, "job 2 is still leased");
    assert.equal(await q.recover(), 1, "only job 2 comes back, the dead one does not");
    assert.deepEqual(raws(await q.lease(10, 0)), [job(2)]);
  },

  "dead letters are replayed (one, then all) to the tail as new jobs, or discarded": async (h) => {
    const q = h.consumer("c1");
    await q.push(job(1), job(2), job(3), job(4));
    const leases = await q.lease(4, 0);
    for (const lease of leases) await q.deadLetter(lease, `bad ${lease.raw}`);
    const dead = await q.deadLetters();
    assert.deepEqual(dead.map((d) => d.job), [job(1), job(2), job(3), job(4)]);
    assert.equal(new Set(dead.map((d) => d.id)).size, 4, "ids tell the entries apart");
    assert.deepEqual((await q.deadLetters(2, 1)).map((d) => d.job), [job(2), job(3)], "paged");
    await q.push(job(5));
    assert.equal(await q.replayDeadLetters([dead[1]!.id, "no-such-id"]), 1);
    assert.equal(await q.replayDeadLetters([dead[1]!.id]), 0, "an id is replayed once");
    assert.equal(await q.discardDeadLetters([dead[0]!.id]), 1);
    assert.deepEqual((await q.deadLetters()).map((d) => d.job), [job(3), job(4)]);
    assert.deepEqual(raws(await q.lease(10, 0)).sort(), [job(5), job(2)].sort());
    const replayed = (await q.depth()).processing;
    assert.equal(replayed, 2);
    assert.equal(await q.replayDeadLetters(), 2);
    const again = await q.lease(10, 0);
    assert.deepEqual(raws(again), [job(3), job(4)], "all replayed, in their order, at the tail");
    assert.deepEqual(again.map((l) => l.attempts), [0, 0], "a replayed job starts its attempts again");
    await q.deadLetter(again[0]!, "again");
    assert.equal(await q.discardDeadLetters(), 1);
    assert.equal((await q.depth()).dead, 0);
    assert.equal(await q.replayDeadLetters([]), 0);
  },

  "depth counts each state": async (h) => {
    const q = h.consumer("c1");
    await q.push(...[1, 2, 3, 4, 5].map(job));
    const [a, b] = await q.lease(2, 0);
    await q.retry(a!, 60_000);
    await q.deadLetter(b!, "bad");
    await q.lease(1, 0);
    assert.deepEqual(await q.depth(), { ready: 2, processing: 1, delayed: 1, dead: 1 });
  },

  "rewrite replaces a leased job: ack, release and recovery all see the new element": async (h) => {
    const q = h.consumer("c1");
    await q.push("a", "b", "c");
    const [a, b, c] = await q.lease(3, 100);
    const a2 = await q.rewrite(a!, "a+id");
    const b2 = await q.rewrite(b!, "b+id");
    assert.equal(a2.raw, "a+id");
    await q.ack([a2]);
    await q.release([b2]);
    await assert.rejects(q.rewrite(a2, "again"), /not leased/);
    const c2 = await q.rewrite(c!, "c+id");
    assert.equal(c2.raw, "c+id");
    await h.crash();
    const again = h.consumer("c1");
    await again.recover();
    assert.deepEqual((await again.lease(10, 100)).map((l) => l.raw), ["c+id", "b+id"]);
  },

  "after a crash, a consumer with the same id recovers its own jobs": async (h) => {
    const q = h.consumer("gw:worker:0");
    await q.push(job(1), job(2), job(3));
    assert.deepEqual(raws(await q.lease(2, 0)), [job(1), job(2)]);
    await h.crash(); // no ack
    const restarted = h.consumer("gw:worker:0");
    assert.equal(await restarted.recover(), 2);
    const leases = await restarted.lease(10, 0);
    assert.deepEqual(raws(leases), [job(1), job(2), job(3)], "recovered jobs come first, in order");
    await restarted.ack(leases);
    assert.deepEqual(await restarted.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
  },

  "another consumer recovers a dead consumer's jobs once its liveness lapses": async (h) => {
    const dead = h.consumer("gw-a:worker:0", { aliveTtlMs: 300 });
    await dead.push(job(1));
    assert.deepEqual(raws(await dead.lease(1, 0)), [job(1)]);
    await h.crash();
    const other = h.consumer("gw-b:worker:0", { aliveTtlMs: 300 });
    assert.equal(await other.recover(), 0, "the first consumer may still be alive");
    assert.deepEqual(await other.lease(1, 0), []);
    await sleep(450);
    assert.equal(await other.recover(), 1);
    const [lease] = await other.lease(1, 0);
    assert.equal(lease!.raw, job(1));
    assert.equal(lease!.attempts, 0);
  },

  "a live consumer keeps its jobs when another one recovers": async (h) => {
    const alive = h.consumer("gw-a:worker:0", { aliveTtlMs: 10_000 });
    await alive.push(job(1));
    const leases = await alive.lease(1, 0);
    const other = h.consumer("gw-b:worker:0", { aliveTtlMs: 10_000 });
    assert.equal(await other.recover(), 0);
    await alive.ack(leases);
    assert.deepEqual(await other.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
  },

  "reclaim puts back a dead consumer's jobs at the head, in order, and never its own or a live one's": async (
    h,
  ) => {
    const ttl = { aliveTtlMs: 300 };
    const dead = h.consumer("gw-a:worker:0", ttl);
    await dead.push(...[1, 2, 3, 4, 5].map(job));
    assert.deepEqual(raws(await dead.lease(2, 0)), [job(1), job(2)]);
    await h.crash(); // gw-a is gone for good: never started again under its id
    const sweeper = h.consumer("gw-b:worker:0", ttl);
    const live = h.consumer("gw-c:worker:0", ttl);
    assert.deepEqual(raws(await sweeper.lease(1, 0)), [job(3)], "the sweeper's own lease");
    assert.deepEqual(raws(await live.lease(1, 0)), [job(4)], "a live consumer's lease");
    assert.deepEqual(
      await sweeper.reclaim(),
      { consumers: [], heldByOthers: 3 },
      "gw-a's liveness has not lapsed yet",
    );
    await sleep(450);
    assert.deepEqual(await sweeper.reclaim(), {
      consumers: [{ consumer: "gw-a:worker:0", jobs: 2 }],
      heldByOthers: 1,
    });
    assert.deepEqual(await sweeper.reclaim(), { consumers: [], heldByOthers: 1 }, "nothing twice");
    const again = await live.lease(10, 0);
    assert.deepEqual(raws(again), [job(1), job(2), job(5)], "back at the head, in their order");
    assert.deepEqual(again.map((l) => l.attempts), [0, 0, 0]);
    assert.deepEqual(await sweeper.depth(), { ready: 0, processing: 5, delayed: 0, dead: 0 });
  },

  "a live consumer holding a lease for several TTLs without a queue operation is not robbed": async (h) => {
    const ttl = { aliveTtlMs: 300 };
    const holder = h.consumer("gw-a:worker:0", ttl);
    await holder.push(job(1), job(2));
    const leases = await holder.lease(1, 0);
    const sweeper = h.consumer("gw-b:worker:0", ttl);
    // Five TTLs of a job in hand (a database down for minutes, in short), sweeping all along.
    for (const until = Date.now() + 1500; Date.now() < until;) {
      assert.deepEqual(await sweeper.reclaim(), { consumers: [], heldByOthers: 1 });
      await sleep(50);
    }
    await holder.ack(leases);
    assert.deepEqual(await sweeper.depth(), { ready: 1, processing: 0, delayed: 0, dead: 0 });
    assert.deepEqual(raws(await sweeper.lease(10, 0)), [job(2)]);
  },

  "two sweeps at once move each job of a dead consumer once": async (h) => {
    const ttl = { aliveTtlMs: 300 };
    const dead = h.consumer("gw-a:worker:0", ttl);
    const jobs = Array.from({ length: 50 }, (_, i) => job(i));
    await dead.push(...jobs);
    assert.equal((await dead.lease(50, 0)).length, 50);
    await h.crash();
    const a = h.consumer("gw-b:worker:0", ttl);
    const b = h.consumer("gw-c:worker:0", ttl);
    await sleep(450);
    const [ra, rb] = await Promise.all([a.reclaim(), b.reclaim()]);
    assert.deepEqual([...ra.consumers, ...rb.consumers], [{ consumer: "gw-a:worker:0", jobs: 50 }]);
    const leased = await a.lease(100, 0);
    assert.deepEqual(raws(leased), jobs, "each job once, in order");
    await a.ack(leased);
    assert.deepEqual(await b.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
  },

  "close() stops the liveness refresh: a closed consumer's jobs are reclaimed a TTL later": async (h) => {
    const ttl = { aliveTtlMs: 300 };
    const closing = h.consumer("gw-a:worker:0", ttl);
    await closing.push(job(1));
    await closing.lease(1, 0);
    const sweeper = h.consumer("gw-b:worker:0", ttl);
    await sleep(450);
    assert.deepEqual(await sweeper.reclaim(), { consumers: [], heldByOthers: 1 }, "refreshed while open");
    await closing.close();
    await closing.close(); // idempotent
    await sleep(450);
    assert.deepEqual(await sweeper.reclaim(), {
      consumers: [{ consumer: "gw-a:worker:0", jobs: 1 }],
      heldByOthers: 0,
    });
    assert.deepEqual(raws(await sweeper.lease(10, 0)), [job(1)]);
  },

  "jobs survive a crash before they are leased": async (h) => {
    await h.consumer("producer").push(job(1), job(2));
    await h.crash();
    assert.deepEqual(raws(await h.consumer("c1").lease(10, 0)), [job(1), job(2)]);
  },
};

/** One case of the suite on a fresh harness of `backend`, cleaned up however it ends. */
async function runCase(backend: Backend, run: Case): Promise<void> {
  const h = await backend.open();
  try {
    await run(h, backend.kind);
  } finally {
    await h.cleanup();
  }
}

for (const backend of [redisBackend, sqliteBackend]) {
  for (const [title, run] of Object.entries(cases)) {
    Deno.test(`${backend.kind} queue: ${title}`, () => runCase(backend, run));
  }
}

Deno.test("redis cluster queue: the conformance suite on a three-master Cluster", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "gw_queue_cluster_" });
  const cluster = await RedisCluster.start(dir);
  try {
    const backend = topologyBackend(cluster.url, (pattern) => cluster.keys(pattern));
    for (const [title, run] of Object.entries(cases)) await t.step(title, () => runCase(backend, run));
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("redis sentinel queue: the conformance suite through Sentinel, waiting for the replica", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "gw_queue_sentinel_" });
  const set = await RedisSentinelSet.start(dir);
  try {
    // Pushes wait for the replica (WAIT 1), as the gateway does behind Sentinel by default.
    const backend = topologyBackend(set.url, (pattern) => set.with((redis) => redis.keys(pattern)), 1);
    for (const [title, run] of Object.entries(cases)) await t.step(title, () => runCase(backend, run));
  } finally {
    await set.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("redis queue: the main list is exactly what a Laravel producer or consumer sees", async () => {
  const h = await redisBackend.open();
  const redis = new Redis(REDIS_URL);
  try {
    const q = h.consumer("c1");
    const pushed = [job(1), '{"type":"error","serial_no":"M-2","payload":{"code":"E1"},"received_at":"x"}'];
    await q.push(...pushed);
    assert.deepEqual(await redis.lrange(h.name, 0, -1), pushed);
    // A Laravel producer RPUSHes onto the same list; we lease it unchanged.
    await redis.rpush(h.name, job(3));
    assert.deepEqual(raws(await q.lease(10, 0)), [...pushed, job(3)]);
    assert.deepEqual(await redis.lrange(h.name, 0, -1), []);
  } finally {
    await redis.quit();
    await h.cleanup();
  }
});

Deno.test("sqlite queue: a pending lease ends on abort and on close", async () => {
  const h = await sqliteBackend.open();
  try {
    const q = h.consumer("c1");
    const controller = new AbortController();
    const aborted = q.lease(10, 10_000, controller.signal);
    setTimeout(() => controller.abort(), 20);
    assert.deepEqual(await aborted, []);
    const closing = q.lease(10, 10_000);
    setTimeout(() => q.close(), 20);
    assert.deepEqual(await closing, []);
    assert.deepEqual(await q.lease(10, 0), [], "a closed queue leases nothing");
  } finally {
    await h.cleanup();
  }
});

Deno.test("sqlite queue: queues of different names on one file do not mix", async () => {
  const h = await sqliteBackend.open();
  const dir = await Deno.makeTempDir({ prefix: "gw_queue_" });
  const db = SqliteQueue.openDatabase(join(dir, "q.db"));
  try {
    const a = new SqliteQueue(db, "incoming", { consumerId: "c" });
    const b = new SqliteQueue(db, "outgoing", { consumerId: "c" });
    await a.push(job(1));
    await b.push(job(2));
    assert.deepEqual(raws(await b.lease(10, 0)), [job(2)]);
    assert.deepEqual((await a.depth()).ready, 1);
    assert.deepEqual(raws(await a.lease(10, 0)), [job(1)]);
    await Promise.all([a.close(), b.close()]);
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
    await h.cleanup();
  }
});

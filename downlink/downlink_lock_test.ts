import assert from "node:assert/strict";
import { SERVICES } from "../tests/support.ts";
import { Redis } from "ioredis";
import { RedisDownlinkLock } from "./downlink_lock.ts";

Deno.test("downlink lock: one holder at a time; the other takes over after release", async () => {
  const redis = new Redis(SERVICES.redis);
  const queue = `test:lock:${crypto.randomUUID()}`;
  const a = new RedisDownlinkLock(redis, queue, "a", 600);
  const b = new RedisDownlinkLock(redis, queue, "b", 600);
  const stopB = new AbortController();
  try {
    assert.equal(await a.acquire(new AbortController().signal), true);
    assert.equal(a.held, true);
    let bGot = false;
    const waiting = b.acquire(stopB.signal).then((ok) => (bGot = ok));
    await new Promise((r) => setTimeout(r, 900)); // longer than the TTL: a's renewals keep it
    assert.equal(bGot, false, "a renews while it runs");
    assert.equal(a.held, true);
    await a.release();
    assert.equal(a.held, false);
    await waiting;
    assert.equal(bGot, true);
    assert.equal(b.held, true);
  } finally {
    stopB.abort();
    await a.release();
    await b.release();
    await redis.del(`{${queue}}:leader`);
    redis.disconnect();
  }
});

Deno.test("downlink lock: acquire gives up when the signal aborts", async () => {
  const redis = new Redis(SERVICES.redis);
  const queue = `test:lock:${crypto.randomUUID()}`;
  const a = new RedisDownlinkLock(redis, queue, "a", 5000);
  const b = new RedisDownlinkLock(redis, queue, "b", 5000);
  try {
    await a.acquire(new AbortController().signal);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 300);
    assert.equal(await b.acquire(stop.signal), false);
    assert.equal(b.held, false);
  } finally {
    await a.release();
    await redis.del(`{${queue}}:leader`);
    redis.disconnect();
  }
});

Deno.test("downlink lock: an older gateway's lock (Q:leader, no hash tag) keeps us standing by, and ours keeps it out", async () => {
  const redis = new Redis(SERVICES.redis);
  const queue = `test:lock:${crypto.randomUUID()}`;
  const a = new RedisDownlinkLock(redis, queue, "a", 5000);
  try {
    await redis.set(`${queue}:leader`, "older-gateway", "PX", 5000);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 300);
    assert.equal(await a.acquire(stop.signal), false, "the older gateway holds the old key");
    await redis.del(`${queue}:leader`);
    assert.equal(await a.acquire(new AbortController().signal), true);
    // Both keys are ours now: an older gateway's SET NX on the old key fails.
    assert.equal(await redis.set(`${queue}:leader`, "older-gateway", "PX", 5000, "NX"), null);
    assert.equal(await redis.get(`{${queue}}:leader`), await redis.get(`${queue}:leader`));
    await a.release();
    assert.equal(await redis.exists(`${queue}:leader`, `{${queue}}:leader`), 0);
  } finally {
    await a.release();
    await redis.del(`{${queue}}:leader`, `${queue}:leader`);
    redis.disconnect();
  }
});

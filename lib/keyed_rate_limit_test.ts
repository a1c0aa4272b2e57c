import assert from "node:assert/strict";
import { KeyedRateLimit } from "./keyed_rate_limit.ts";

Deno.test("KeyedRateLimit: a burst per key, refilled over time, keys bounded", () => {
  let now = 0;
  const limit = new KeyedRateLimit({ perSecond: 2, burst: 3, maxKeys: 2, now: () => now });
  assert.deepEqual([1, 2, 3, 4].map(() => limit.take("a")), [true, true, true, false]);
  assert.equal(limit.take("b"), true, "another key has its own bucket");
  now = 500; // one token back
  assert.deepEqual([limit.take("a"), limit.take("a")], [true, false]);
  limit.take("c"); // a third key: the oldest ("a") is forgotten and starts full again
  assert.deepEqual([1, 2, 3].map(() => limit.take("a")), [true, true, true]);
});

Deno.test("KeyedRateLimit.waitMs: how long until a token, without taking one", () => {
  let now = 0;
  const limit = new KeyedRateLimit({ perSecond: 0.1, burst: 2, now: () => now });
  assert.equal(limit.waitMs("a"), 0, "an unknown key has a full bucket");
  assert.equal(limit.waitMs("a"), 0, "looking takes nothing");
  assert.deepEqual([limit.take("a"), limit.take("a")], [true, true]);
  assert.equal(limit.waitMs("a"), 10_000);
  now = 4_000;
  assert.equal(limit.waitMs("a"), 6_000);
  assert.equal(limit.take("a"), false);
  assert.equal(limit.waitMs("a"), 6_000, "a refused take costs nothing");
  now = 10_000;
  assert.equal(limit.waitMs("a"), 0);
  assert.equal(limit.take("a"), true);
  assert.equal(limit.waitMs("b"), 0, "other keys are untouched");
});

import assert from "node:assert/strict";
import { ExpiringSet } from "./expiring_set.ts";

Deno.test("ExpiringSet: entries expire after ttlMs, the oldest go when full", () => {
  let now = 0;
  const set = new ExpiringSet({ ttlMs: 100, maxSize: 2, now: () => now });
  set.add("a");
  now = 50;
  set.add("b");
  assert.equal(set.has("a"), true);
  now = 100;
  assert.equal(set.has("a"), false, "expired");
  assert.equal(set.has("b"), true);
  set.add("c");
  set.add("d");
  assert.equal(set.size, 2);
  assert.equal(set.has("b"), false, "the oldest made room");
  assert.deepEqual([set.has("c"), set.has("d")], [true, true]);
});

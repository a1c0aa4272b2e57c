import assert from "node:assert/strict";
import { MAX_PAYLOAD_DEPTH, nestedDeeperThan } from "./json_depth.ts";

Deno.test("payload nesting: up to MAX_PAYLOAD_DEPTH levels of objects and arrays, not one more", () => {
  const nested = (levels: number): unknown => levels === 1 ? {} : { a: [nested(levels - 2)] };
  assert.equal(nestedDeeperThan({ temperature: 25.5, tags: ["a"] }, MAX_PAYLOAD_DEPTH), false);
  assert.equal(nestedDeeperThan(JSON.parse("[".repeat(31) + "]".repeat(31)), MAX_PAYLOAD_DEPTH), false);
  assert.equal(nestedDeeperThan(JSON.parse("[".repeat(32) + "]".repeat(32)), MAX_PAYLOAD_DEPTH), true);
  assert.equal(nestedDeeperThan(nested(31), MAX_PAYLOAD_DEPTH), false);
  assert.equal(nestedDeeperThan(nested(33), MAX_PAYLOAD_DEPTH), true);
  assert.equal(
    nestedDeeperThan(JSON.parse("[".repeat(20_000) + "]".repeat(20_000)), MAX_PAYLOAD_DEPTH),
    true,
  );
});

import assert from "node:assert/strict";
import { backoffDelay } from "./backoff_delay.ts";

Deno.test("backoffDelay grows, is capped, and jitters within [ceiling/2, ceiling]", () => {
  assert.equal(backoffDelay(1, 1000, 60_000, () => 0), 500);
  assert.equal(backoffDelay(1, 1000, 60_000, () => 1), 1000);
  assert.equal(backoffDelay(3, 1000, 60_000, () => 1), 4000);
  assert.equal(backoffDelay(30, 1000, 60_000, () => 1), 60_000);
});

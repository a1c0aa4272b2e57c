import assert from "node:assert/strict";
import { LogThrottle } from "./log_throttle.ts";

Deno.test("LogThrottle: one line per interval, counting those left out", () => {
  let now = 0;
  const t = new LogThrottle(1000, () => now);
  assert.equal(t.take(), 0);
  assert.equal(t.take(), null);
  now = 999;
  assert.equal(t.take(), null);
  now = 1000;
  assert.equal(t.take(), 2);
  assert.equal(t.take(), null);
  now = 5000;
  assert.equal(t.take(), 1);
});

import assert from "node:assert/strict";
import { SERIAL_NO } from "./identity.ts";
import { bridgePayloadSchema, encodeBridgePayload, formatReceivedAt } from "./incoming_job.ts";

Deno.test("received_at is ISO 8601 with the UTC offset and no fraction, like the seed", () => {
  const at = new Date("2026-04-14T01:00:00.123Z");
  assert.equal(formatReceivedAt(at, 480), "2026-04-14T09:00:00+08:00");
  assert.equal(formatReceivedAt(at, 0), "2026-04-14T01:00:00+00:00");
  assert.equal(formatReceivedAt(at, -150), "2026-04-13T22:30:00-02:30");
  assert.equal(Date.parse(formatReceivedAt(at, 480)), Date.parse("2026-04-14T01:00:00Z"));
});

Deno.test("the job JSON has the contract's keys in the contract's order", () => {
  const raw = encodeBridgePayload({
    received_at: "2026-04-14T09:00:00+08:00",
    payload: { current_page: 1, temperature: 25.5 },
    serial_no: "M-001",
    type: "heartbeat",
  });
  assert.equal(
    raw,
    '{"type":"heartbeat","serial_no":"M-001","payload":{"current_page":1,"temperature":25.5},"received_at":"2026-04-14T09:00:00+08:00"}',
  );
  assert.ok(bridgePayloadSchema.safeParse(JSON.parse(raw)).success);
});

Deno.test("serial numbers: letters, digits, _ and -, 1 to 64 characters", () => {
  for (const ok of ["M-001", "TEST_001", "a", "x".repeat(64)]) assert.ok(SERIAL_NO.test(ok), ok);
  for (const bad of ["", "M 001", "M/001", "M+1", "#", "x".repeat(65), "ü"]) {
    assert.ok(!SERIAL_NO.test(bad), bad);
  }
});

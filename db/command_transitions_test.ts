import assert from "node:assert/strict";
import { ackOutcome, type AckState } from "./command_transitions.ts";
import type { CommandAck, CommandStatus } from "./store.ts";

const ack = (status: CommandAck["status"], serialNo = "M-001"): CommandAck => ({
  messageId: "MSG_1",
  serialNo,
  status,
  detail: {},
  at: new Date(0),
});
const state = (status: CommandStatus, sentAt: Date | null = null): AckState => ({
  serialNo: "M-001",
  status,
  sentAt,
});

Deno.test("ack rule: forward only, terminal after a timeout only if published, own machine only", () => {
  assert.equal(ackOutcome(undefined, ack("delivered")), "unknown");
  assert.equal(ackOutcome(state("sent"), ack("delivered", "M-002")), "wrong_machine");
  assert.equal(ackOutcome(state("queued"), ack("delivered")), "applied");
  assert.equal(ackOutcome(state("sent"), ack("delivered")), "applied");
  assert.equal(ackOutcome(state("delivered"), ack("delivered")), "stale");
  assert.equal(ackOutcome(state("delivered"), ack("succeeded")), "applied");
  assert.equal(ackOutcome(state("succeeded"), ack("failed")), "stale");
  assert.equal(ackOutcome(state("failed"), ack("delivered")), "stale");
  assert.equal(ackOutcome(state("expired", new Date(0)), ack("succeeded")), "applied");
  assert.equal(ackOutcome(state("expired"), ack("succeeded")), "stale");
  assert.equal(ackOutcome(state("expired", new Date(0)), ack("delivered")), "stale");
});

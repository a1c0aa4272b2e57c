import assert from "node:assert/strict";
import { commandTopic, machineUplinkTopics, parseUplinkTopic, uplinkFilters } from "./topics.ts";

Deno.test("uplink topics map to job types; the serial comes from the topic", () => {
  assert.deepEqual(parseUplinkTopic("machine/M-001/heartbeat"), { serialNo: "M-001", type: "heartbeat" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/error"), { serialNo: "M-001", type: "error" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/transaction"), { serialNo: "M-001", type: "transaction" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/command/ack"), { serialNo: "M-001", type: "command_ack" });
});

Deno.test("other topics and bad serials are rejected with a reason", () => {
  assert.deepEqual(parseUplinkTopic("machine/M-001/command"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machine/M-001"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machines/M-001/heartbeat"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/heartbeat/extra"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machine/M 001/heartbeat"), { reason: "bad_serial" });
  assert.deepEqual(parseUplinkTopic(`machine/${"x".repeat(65)}/heartbeat`), { reason: "bad_serial" });
});

Deno.test("shared subscriptions only when a group is set", () => {
  assert.deepEqual(uplinkFilters("g1"), [
    "$share/g1/machine/+/heartbeat",
    "$share/g1/machine/+/error",
    "$share/g1/machine/+/transaction",
    "$share/g1/machine/+/command/ack",
  ]);
  assert.equal(uplinkFilters("")[0], "machine/+/heartbeat");
});

Deno.test("a machine's own topics: four uplink topics, one command topic", () => {
  assert.deepEqual(machineUplinkTopics("M-1"), [
    "machine/M-1/heartbeat",
    "machine/M-1/error",
    "machine/M-1/transaction",
    "machine/M-1/command/ack",
  ]);
  assert.equal(commandTopic("M-1"), "machine/M-1/command");
});

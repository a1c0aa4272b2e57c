import assert from "node:assert/strict";
import { encodeCommandMessage, newMessageId, outgoingCommandSchema } from "./outgoing_command.ts";

Deno.test("outgoing command: Laravel's shapes are read, bad ones refused", () => {
  const ok = (v: unknown) => outgoingCommandSchema.parse(v);
  assert.deepEqual(ok({ target: "M-001", command: "reboot", payload: [] }).payload, {}, "PHP's empty array");
  assert.deepEqual(ok({ target: "M-001", command: "reboot" }).payload, {});
  assert.equal(ok({ target: "M-001", command: "reboot", message_id: null }).message_id, undefined);
  assert.equal(ok({ target: "M-001", command: "reboot", message_id: "" }).message_id, undefined);
  assert.equal(ok({ target: "M-001", command: "reboot", message_id: 123456789 }).message_id, "123456789");
  const bad = (v: unknown) =>
    assert.equal(outgoingCommandSchema.safeParse(v).success, false, JSON.stringify(v));
  bad({ target: "M/001", command: "reboot" });
  bad({ target: "M-001", command: "" });
  bad({ target: "M-001", command: "re boot" });
  bad({ target: "M-001", command: "reboot", payload: [1, 2] });
  bad({ target: "M-001", command: "reboot", payload: "x" });
  bad({ target: "M-001", command: "reboot", message_id: "has space" });
  bad({ command: "reboot" });
});

Deno.test("the downlink JSON has the contract's keys in the contract's order", () => {
  const raw = encodeCommandMessage({
    message_id: "MSG_1",
    payload: { slot_no: 5 },
    command: "dispense",
    target: "M-001",
  });
  assert.equal(raw, '{"target":"M-001","command":"dispense","payload":{"slot_no":5},"message_id":"MSG_1"}');
  const a = newMessageId(1776130000000);
  assert.match(a, /^MSG_1776130000000[0-9a-f]{8}$/);
  assert.notEqual(a, newMessageId(1776130000000));
});

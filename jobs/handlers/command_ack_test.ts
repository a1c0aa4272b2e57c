import assert from "node:assert/strict";
import type { CommandAck, Store } from "../../db/store.ts";
import { commandAckJob, commandAckSchema } from "./command_ack.ts";

Deno.test("command ack: statuses map to the lifecycle, the report is kept, other statuses are refused", async () => {
  const seen: CommandAck[] = [];
  let calls = 0;
  const store = {
    recordCommandAcks: (acks: CommandAck[]) => {
      calls++;
      seen.push(...acks);
      return Promise.resolve(acks.map(() => "applied"));
    },
  } as unknown as Store;
  const at = new Date("2026-04-14T01:00:00Z");
  const jobs = [
    { message_id: "MSG_1", status: "received" },
    { message_id: "MSG_1", status: "OK", detail: { dispensed: 1 } },
    { message_id: "MSG_2", status: "rejected", detail: "slot empty" },
    { message_id: 42, status: "failed" },
  ].map((p) => ({ serialNo: "M-001", receivedAt: at, payload: commandAckSchema.parse(p) }));
  await commandAckJob.handle(jobs, { store, alert: () => {} });
  assert.deepEqual(seen.map((a) => [a.messageId, a.status]), [
    ["MSG_1", "delivered"],
    ["MSG_1", "succeeded"],
    ["MSG_2", "failed"],
    ["42", "failed"],
  ]);
  assert.equal(calls, 1, "one store call for the batch");
  assert.deepEqual(seen[2]!.detail, { status: "rejected", detail: "slot empty" });
  assert.equal(seen[0]!.serialNo, "M-001");
  assert.equal(commandAckSchema.safeParse({ message_id: "MSG_1", status: "maybe" }).success, false);
  assert.equal(commandAckSchema.safeParse({ status: "ok" }).success, false);
});

import assert from "node:assert/strict";
import { EventHub, type HubBatch } from "./event_hub.ts";

const hb = (serial: string, temperature: number) => ({
  type: "heartbeat" as const,
  serial,
  at: new Date().toISOString(),
  temperature,
  page: 1,
});

Deno.test("event hub: nothing is kept without a listener; a burst reaches listeners as one coalesced batch", async () => {
  const hub = new EventHub({ flushMs: 20, maxPerFlush: 3 });
  hub.emit(hb("A", 1)); // nobody listens: dropped at once
  const batches: HubBatch[] = [];
  const off = hub.subscribe((b) => batches.push(b));
  for (let i = 0; i < 100; i++) hub.emit(hb("A", i));
  hub.emit(hb("B", 5));
  for (let i = 0; i < 5; i++) {
    hub.emit({ type: "error", serial: "A", code: String(i), level: "error", message: "", at: "" });
  }
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(batches.length, 1);
  const [batch] = batches;
  const heartbeats = batch!.events.filter((e) => e.type === "heartbeat");
  assert.deepEqual(heartbeats.map((e) => [e.serial, e.type === "heartbeat" && e.temperature]), [["A", 99], [
    "B",
    5,
  ]]);
  assert.equal(batch!.events.filter((e) => e.type === "error").length, 3);
  assert.equal(batch!.dropped, 2);
  off();
  assert.equal(hub.active, false);
  hub.close();
});

Deno.test("event hub: a throwing listener does not stop the others; close is idempotent", async () => {
  const hub = new EventHub({ flushMs: 5 });
  let got = 0;
  hub.subscribe(() => {
    throw new Error("closed stream");
  });
  hub.subscribe((b) => got += b.events.length);
  hub.emit({ type: "command", status: "sent", ids: ["M1"], serials: [] });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(got, 1);
  hub.close();
  hub.close();
  hub.emit({ type: "command", status: "sent", ids: ["M1"], serials: [] });
  assert.equal(hub.active, false);
});

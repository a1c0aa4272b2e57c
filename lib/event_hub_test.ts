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

Deno.test("event hub: watched elsewhere it collects for its taps; delivered batches reach listeners only", async () => {
  const hub = new EventHub({ flushMs: 5 });
  const tapped: HubBatch[] = [];
  const heard: HubBatch[] = [];
  const listening: boolean[] = [];
  hub.tap((b) => tapped.push(b));
  hub.onListening((on) => listening.push(on));
  hub.emit(hb("A", 1));
  assert.equal(hub.active, false, "a tap is not a listener");
  hub.watchedElsewhere = true;
  assert.equal(hub.active, true);
  assert.equal(hub.listeners, 0);
  hub.emit(hb("A", 2));
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(tapped.map((b) => b.events.length), [1], "collected for the tap (the relay)");

  hub.emit(hb("A", 3));
  hub.watchedElsewhere = false; // nobody anywhere: what was pending is dropped
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(tapped.length, 1);

  const off = hub.subscribe((b) => heard.push(b));
  const off2 = hub.subscribe(() => {});
  hub.deliver({ events: [hb("B", 1)], dropped: 0 });
  assert.deepEqual(heard.map((b) => b.events[0]!.type === "heartbeat" && b.events[0]!.serial), ["B"]);
  assert.equal(tapped.length, 1, "another process's batch is never passed on again");
  off();
  off();
  off2();
  assert.deepEqual(listening, [true, false], "told on the first listener and when the last one leaves");
  hub.close();
  hub.deliver({ events: [hb("C", 1)], dropped: 0 });
  assert.equal(heard.length, 1);
});

Deno.test("event hub: admits says what a full batch would only count, and counts it as dropped", async () => {
  const hub = new EventHub({ flushMs: 20, maxPerFlush: 2 });
  assert.equal(hub.admits("sale"), false, "nobody listens");
  const batches: HubBatch[] = [];
  const off = hub.subscribe((b) => batches.push(b));
  hub.emit(hb("A", 1));
  hub.emit(hb("B", 1));
  assert.equal(hub.admits("heartbeat", "A"), true, "a machine already in the batch replaces its own");
  assert.equal(hub.admits("heartbeat", "C"), false, "a third machine is over the cap");
  assert.equal(hub.admits("sale"), true);
  hub.emit({ type: "sale", serial: "A", slot: 1, quantity: 1, amount: 1, at: "" });
  hub.emit({ type: "sale", serial: "A", slot: 1, quantity: 1, amount: 1, at: "" });
  assert.equal(hub.admits("sale"), false);
  assert.equal(hub.admits("error"), false, "errors and sales share the cap");
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(batches.length, 1);
  assert.equal(batches[0]!.events.length, 4);
  assert.equal(batches[0]!.dropped, 3, "each refusal counted once");
  off();
  hub.close();
});

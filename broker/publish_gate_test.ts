import assert from "node:assert/strict";
import { PublishGate } from "./publish_gate.ts";

const settle = () => new Promise<void>((resolve) => queueMicrotask(resolve));

Deno.test("PublishGate: reads at once while open; closes at high; reopens at low, oldest reader first", async () => {
  const gate = new PublishGate({ high: 4 });
  assert.equal(gate.low, 2);
  const a = {}, b = {}, c = {};
  const log: string[] = [];
  gate.read(a, () => log.push("a0"));
  assert.deepEqual(log, ["a0"]);
  const messages = [{}, {}, {}, {}];
  for (const m of messages) gate.enter(m, a);
  assert.equal(gate.closed, true);
  gate.read(b, () => log.push("b1"));
  gate.read(a, () => log.push("a1"));
  gate.read(b, () => log.push("b2"));
  gate.read(c, () => log.push("c1"));
  assert.deepEqual(log, ["a0"], "nobody reads while closed");
  assert.equal(gate.waiting, 3);
  gate.leave(messages[0]!);
  await settle();
  assert.deepEqual(log, ["a0"], "3 inside: still above low");
  gate.leave(messages[1]!);
  await settle();
  assert.equal(gate.closed, false);
  assert.deepEqual(
    log,
    ["a0", "b1", "b2", "a1", "c1"],
    "in the order the readers came, each in its own order",
  );
  assert.equal(gate.waiting, 0);
  assert.equal(gate.peak, 4);
  assert.equal(gate.deferrals, 4);
});

Deno.test("PublishGate: a read that fills the broker again stops the others", async () => {
  const gate = new PublishGate({ high: 2, low: 0 });
  const a = {}, b = {};
  const first = [{}, {}];
  for (const m of first) gate.enter(m, a);
  const log: string[] = [];
  gate.read(a, () => {
    log.push("a");
    gate.enter({}, a);
    gate.enter({}, a);
  });
  gate.read(b, () => log.push("b"));
  for (const m of first) gate.leave(m);
  await settle();
  assert.deepEqual(log, ["a"]);
  assert.equal(gate.closed, true);
  assert.equal(gate.waiting, 1);
});

Deno.test("PublishGate: a reader that comes while others wait queues behind them", async () => {
  const gate = new PublishGate({ high: 1, low: 0 });
  const a = {}, b = {};
  const m = {};
  gate.enter(m, a);
  const log: string[] = [];
  gate.read(a, () => log.push("a"));
  gate.leave(m);
  gate.read(b, () => log.push("b")); // open, but a is still waiting: b must not overtake it
  await settle();
  assert.deepEqual(log, ["a", "b"]);
});

Deno.test("PublishGate: a gone reader's messages stop counting and its reads are dropped", async () => {
  const gate = new PublishGate({ high: 2 });
  const a = {}, b = {};
  gate.enter({}, a);
  gate.enter({}, a);
  const log: string[] = [];
  gate.read(a, () => log.push("a"));
  gate.read(b, () => log.push("b"));
  gate.forget(a);
  await settle();
  assert.equal(gate.size, 0);
  assert.deepEqual(log, ["b"]);
  gate.leave({}); // unknown: ignored
  const m = {};
  gate.enter(m, b);
  gate.enter(m, b); // counted once
  assert.equal(gate.size, 1);
});

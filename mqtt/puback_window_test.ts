import assert from "node:assert/strict";
import { PubackWindow } from "./puback_window.ts";

function recorder(limit: number) {
  const sent: number[][] = [];
  const window = new PubackWindow(limit, (ids) => sent.push([...ids]));
  let nexts = 0;
  const add = (id: number) => window.add(id, () => nexts++);
  return { window, sent, add, nexts: () => nexts };
}

Deno.test("PUBACKs leave in arrival order, however the messages settle", () => {
  const { sent, add, window } = recorder(10);
  const settle = [1, 2, 3, 4].map(add);
  settle[3]!();
  settle[1]!();
  assert.deepEqual(sent, [], "nothing before the first message is settled");
  settle[0]!();
  assert.deepEqual(sent, [[1, 2]]);
  settle[2]!();
  assert.deepEqual(sent, [[1, 2], [3, 4]]);
  assert.equal(window.size, 0);
});

Deno.test("settling twice sends one PUBACK", () => {
  const { sent, add } = recorder(10);
  const first = add(7);
  first();
  first();
  assert.deepEqual(sent, [[7]]);
});

Deno.test("the connection reads on at once until the window is full, then after the oldest is acked", () => {
  const { add, nexts, sent, window } = recorder(3);
  const a = add(1);
  const b = add(2);
  assert.equal(nexts(), 2, "room left: the reader goes on at once");
  add(3);
  assert.equal(nexts(), 2, "the third fills the window: the reader waits");
  assert.equal(window.size, 3);
  b();
  assert.equal(nexts(), 2, "a later message settled does not make room: its PUBACK waits for the first");
  a();
  assert.deepEqual(sent, [[1, 2]]);
  assert.equal(nexts(), 3, "acks made room: the reader goes on");
  assert.equal(window.size, 1);
});

Deno.test("after close nothing is sent, and a waiting reader is let go", () => {
  const { add, nexts, sent, window } = recorder(2);
  const a = add(1);
  const b = add(2);
  assert.equal(nexts(), 1);
  b();
  window.close();
  assert.equal(nexts(), 2, "the held reader runs on close");
  a();
  assert.deepEqual(sent, [], "no PUBACK for a message settled after close, nor for the one behind it");
  const late = add(3);
  assert.equal(nexts(), 3);
  late();
  assert.deepEqual(sent, []);
  window.close();
});

Deno.test("a window needs room for one message", () => {
  assert.throws(() => new PubackWindow(0, () => {}), RangeError);
});

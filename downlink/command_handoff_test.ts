/**
 * The hand-off from the intake to the downlink of the same process: when it is taken, when it
 * falls back to a plain push, and that nothing handed over is lost when the downlink lets go.
 */
import assert from "node:assert/strict";
import { newCommandRecord } from "../db/command_record.ts";
import type { Lease, QueueFence, ReliableQueue } from "../queue/reliable_queue.ts";
import { CommandHandoff } from "./command_handoff.ts";

/** A queue whose pushLeased takes everything (or answers null when `appending`), recording calls. */
function fakeQueue(options: { appending?: boolean; gate?: Promise<void>; woken?: string[] } = {}) {
  const calls: { raws: readonly string[]; fence?: QueueFence; append?: boolean }[] = [];
  const acked: string[] = [];
  let interrupts = 0;
  const queue = {
    pushLeased: async (raws: readonly string[], fence?: QueueFence, o?: { append?: boolean }) => {
      calls.push(o ? { raws, fence, append: o.append } : { raws, fence });
      await options.gate;
      if (options.appending) return null;
      return [...options.woken ?? [], ...raws].map((raw): Lease => ({ raw, attempts: 0, ref: raw }));
    },
    ack: (leases: Lease[]) => (acked.push(...leases.map((l) => l.raw)), Promise.resolve()),
    interrupt: () => void interrupts++,
  } as unknown as ReliableQueue;
  return { queue, calls, acked, interrupts: () => interrupts };
}

function plainQueue() {
  const pushed: string[] = [];
  return { pushed, queue: { push: (...raws: string[]) => (pushed.push(...raws), Promise.resolve()) } };
}

const row = (messageId: string) =>
  newCommandRecord({
    messageId,
    serialNo: "M-001",
    command: "dispense",
    payload: {},
    source: "api",
    createdAt: new Date(0),
    expiresAt: new Date(60_000),
  });

Deno.test("hand-off: a plain push until a downlink attaches, and while its lock is not held", async () => {
  const handoff = new CommandHandoff();
  const fallback = plainQueue();
  await handoff.push(fallback.queue, ["a"], [row("a")]);
  assert.deepEqual(fallback.pushed, ["a"]);

  const consumer = fakeQueue();
  let held = false;
  const fence = { key: "q:leader", value: "me" };
  handoff.attach(consumer.queue, () => held ? fence : undefined);
  await handoff.push(fallback.queue, ["b"], [row("b")]);
  assert.deepEqual(fallback.pushed, ["a", "b"]);
  assert.equal(consumer.calls.length, 0);

  held = true;
  await handoff.push(fallback.queue, ["c"], [row("c")]);
  assert.deepEqual(fallback.pushed, ["a", "b"]);
  assert.deepEqual(consumer.calls, [{ raws: ["c"], fence }]);
  assert.equal(consumer.interrupts(), 1, "a waiting lease is woken");
});

Deno.test("hand-off: the downlink takes the leases with the rows made just now, whole hand-offs up to max", async () => {
  const handoff = new CommandHandoff();
  const consumer = fakeQueue();
  handoff.attach(consumer.queue);
  const fallback = plainQueue();
  await handoff.push(fallback.queue, ["a", "b"], [row("a"), undefined]);
  await handoff.push(fallback.queue, ["c"], [row("c")]);
  await handoff.push(fallback.queue, ["d", "e"], [row("d"), row("e")]);
  assert.equal(handoff.pending, 5);
  assert.deepEqual(fallback.pushed, []);

  const first = handoff.take(3)!;
  assert.deepEqual(first.leases.map((l) => l.raw), ["a", "b", "c"]);
  assert.deepEqual([...first.records.keys()], ["a", "c"], "b's row was not made just now");
  assert.equal(first.records.get("c")?.messageId, "c");
  const second = handoff.take(1)!; // one hand-off is never split
  assert.deepEqual(second.leases.map((l) => l.raw), ["d", "e"]);
  assert.equal(handoff.take(10), undefined);
  assert.equal(handoff.pending, 0);
});

Deno.test("hand-off: a queue that had something waiting appends, and beyond maxPending pushes go the plain way", async () => {
  const fallback = plainQueue();
  const appending = new CommandHandoff();
  const waiting = fakeQueue({ appending: true });
  appending.attach(waiting.queue);
  await appending.push(fallback.queue, ["a"], [row("a")]);
  assert.equal(waiting.calls.length, 1);
  assert.equal(appending.take(10), undefined, "appended by the queue: nothing to hand over");

  const full = new CommandHandoff(2);
  const consumer = fakeQueue();
  full.attach(consumer.queue);
  await full.push(fallback.queue, ["b", "c"], [row("b"), row("c")]);
  await full.push(fallback.queue, ["d"], [row("d")]);
  assert.deepEqual(fallback.pushed, ["d"]);
  assert.equal(full.pending, 2);
});

Deno.test("hand-off: detach waits for hand-offs on their way and returns every lease not taken, in order", async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => open = r);
  const handoff = new CommandHandoff();
  const fast = fakeQueue();
  handoff.attach(fast.queue);
  const fallback = plainQueue();
  await handoff.push(fallback.queue, ["a"], [row("a")]);

  const slow = fakeQueue({ gate });
  handoff.attach(slow.queue);
  const late = handoff.push(fallback.queue, ["b"], [row("b")]);
  const detached = handoff.detach();
  open();
  await late;
  assert.deepEqual((await detached).map((l) => l.raw), ["a", "b"]);
  assert.equal(handoff.take(10), undefined);
  await handoff.push(fallback.queue, ["c"], [row("c")]);
  assert.deepEqual(fallback.pushed, ["c"], "detached: the plain way again");
});

Deno.test("hand-off while storing: leased without appending, delivered with the rows stored, the rest taken out", async () => {
  const handoff = new CommandHandoff();
  const consumer = fakeQueue({ woken: ["w"] }); // a producer's element a blocking wait had moved
  handoff.attach(consumer.queue);
  const { stored, taken } = await handoff.storeWhileLeasing(
    ["a", "b", "c"],
    () => Promise.resolve(["row a", "failed", "row c"]),
    (results) => results.map((r, i) => r === "failed" ? undefined : row(["a", "b", "c"][i]!)),
  );
  assert.deepEqual(stored, ["row a", "failed", "row c"]);
  assert.equal(taken, true);
  assert.deepEqual(consumer.calls.map((c) => [c.raws, c.append]), [[["a", "b", "c"], false]]);
  assert.deepEqual(consumer.acked, ["b"], "leased without a row: taken out, never published");
  const batch = handoff.take(10)!;
  assert.deepEqual(batch.leases.map((l) => l.raw), ["w", "a", "c"]);
  assert.deepEqual([...batch.records.keys()], ["a", "c"]);
});

Deno.test("hand-off while storing: a failed store takes its leases out and fails; not ready or not taken, nothing is written", async () => {
  const handoff = new CommandHandoff();
  const consumer = fakeQueue();
  handoff.attach(consumer.queue);
  await assert.rejects(
    handoff.storeWhileLeasing(["a"], () => Promise.reject(new Error("database down")), () => []),
    /database down/,
  );
  assert.deepEqual(consumer.acked, ["a"]);
  assert.equal(handoff.take(10), undefined);

  const busy = new CommandHandoff();
  const appending = fakeQueue({ appending: true });
  busy.attach(appending.queue);
  const notTaken = await busy.storeWhileLeasing(["b"], () => Promise.resolve("ok"), () => [row("b")]);
  assert.deepEqual(notTaken, { stored: "ok", taken: false });
  assert.equal(busy.take(10), undefined);

  const detached = new CommandHandoff();
  const notReady = await detached.storeWhileLeasing(["c"], () => Promise.resolve("ok"), () => [row("c")]);
  assert.deepEqual(notReady, { stored: "ok", taken: false });
});

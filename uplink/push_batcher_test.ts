/** @module push_batcher_test — group commit of queue pushes. */
import assert from "node:assert/strict";
import { PushBatcher } from "./push_batcher.ts";

/** A queue whose pushes complete only when the test says so. */
function fakeQueue() {
  const calls: { raws: string[]; settle: (error?: Error) => void }[] = [];
  return {
    calls,
    push(...raws: string[]): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        calls.push({ raws, settle: (error) => error ? reject(error) : resolve() });
      });
    },
  };
}

Deno.test("the first push goes out alone at once; those made meanwhile leave together, in order", async () => {
  const q = fakeQueue();
  const batcher = new PushBatcher(q, 1000, 1);
  const settled: string[] = [];
  const a = batcher.push("a").then(() => settled.push("a"));
  assert.deepEqual(q.calls.map((c) => c.raws), [["a"]]);
  const b = batcher.push("b").then(() => settled.push("b"));
  const c = batcher.push("c").then(() => settled.push("c"));
  assert.equal(q.calls.length, 1, "nothing else is sent while a push is in flight");
  q.calls[0]!.settle();
  await a;
  await Promise.resolve();
  assert.deepEqual(q.calls.map((x) => x.raws), [["a"], ["b", "c"]]);
  assert.deepEqual(settled, ["a"], "b and c are not confirmed before their own push is stored");
  q.calls[1]!.settle();
  await Promise.all([b, c]);
  assert.deepEqual(settled, ["a", "b", "c"]);
});

Deno.test("a failed push rejects only the callers whose elements it carried, and the next goes on", async () => {
  const q = fakeQueue();
  const batcher = new PushBatcher(q, 1000, 1);
  const a = batcher.push("a");
  const b = batcher.push("b");
  q.calls[0]!.settle(new Error("redis down"));
  await assert.rejects(a, /redis down/);
  await Promise.resolve();
  assert.deepEqual(q.calls[1]!.raws, ["b"]);
  q.calls[1]!.settle();
  await b;
});

Deno.test("a batch holds at most maxBatch elements", async () => {
  const q = fakeQueue();
  const batcher = new PushBatcher(q, 2, 1);
  const all = ["a", "b", "c", "d", "e"].map((x) => batcher.push(x));
  for (let i = 0; i < 3; i++) {
    q.calls[i]!.settle();
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(all);
  assert.deepEqual(q.calls.map((c) => c.raws), [["a"], ["b", "c"], ["d", "e"]]);
});

Deno.test("up to maxInFlight pushes go out at once; the rest wait for one to finish", async () => {
  const q = fakeQueue();
  const batcher = new PushBatcher(q, 1000, 2);
  const all = ["a", "b", "c", "d"].map((x) => batcher.push(x));
  assert.deepEqual(q.calls.map((c) => c.raws), [["a"], ["b"]]);
  q.calls[1]!.settle();
  await all[1];
  await Promise.resolve();
  assert.deepEqual(q.calls.map((c) => c.raws), [["a"], ["b"], ["c", "d"]]);
  q.calls[0]!.settle();
  q.calls[2]!.settle();
  await Promise.all(all);
});

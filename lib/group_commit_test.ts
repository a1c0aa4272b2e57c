/** @module group_commit_test — per-item results of a group commit (batching itself: push_batcher_test). */
import assert from "node:assert/strict";
import { GroupCommit, type ItemResult } from "./group_commit.ts";

Deno.test("group commit: each caller gets its own item's result, failures included", async () => {
  const batches: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const group = new GroupCommit<number, string>(
    async (items) => {
      batches.push(items);
      await gate;
      return items.map((n): ItemResult<string> =>
        n % 2 === 0 ? { ok: true, value: `even ${n}` } : { ok: false, error: new Error(`odd ${n}`) }
      );
    },
    1000,
    1,
  );
  const all = [1, 2, 3, 4].map((n) => group.add(n));
  release();
  const settled = await Promise.allSettled(all);
  assert.deepEqual(batches, [[1], [2, 3, 4]]);
  assert.deepEqual(
    settled.map((s) => s.status === "fulfilled" ? s.value : (s.reason as Error).message),
    ["odd 1", "even 2", "odd 3", "even 4"],
  );
});

Deno.test("group commit: a run that throws, even synchronously, fails its batch and the next one goes on", async () => {
  let calls = 0;
  const group = new GroupCommit<string, string>(
    (items) => {
      calls++;
      if (calls === 1) throw new Error("boom");
      return Promise.resolve(items.map((x) => ({ ok: true, value: x.toUpperCase() })));
    },
    1000,
    1,
  );
  await assert.rejects(group.add("a"), /boom/);
  assert.equal(await group.add("b"), "B");
});

Deno.test("group commit: a run that returns too few results fails the items left without one", async () => {
  const short = new GroupCommit<string, string>(() => Promise.resolve([]));
  await assert.rejects(short.add("y"), /no result for item 0 of 1/);
});

import assert from "node:assert/strict";
import { ROW_CHUNK_SIZES, rowChunks } from "./row_chunks.ts";

Deno.test("rowChunks: every part has one of the few sizes, in order, nothing lost", () => {
  const lengths = new Set<number>();
  for (let n = 0; n <= 1200; n++) {
    const items = Array.from({ length: n }, (_, i) => i);
    const parts = rowChunks(items);
    assert.deepEqual(parts.flat(), items);
    for (const part of parts) lengths.add(part.length);
    assert.ok(parts.length <= 12 + n / 256, `${n} rows took ${parts.length} statements`);
  }
  assert.deepEqual([...lengths].sort((a, b) => b - a), [...ROW_CHUNK_SIZES]);
});

Deno.test("rowChunks: largest sizes first", () => {
  assert.deepEqual(rowChunks(Array.from({ length: 86 }, (_, i) => i)).map((p) => p.length), [
    64,
    16,
    4,
    1,
    1,
  ]);
  assert.deepEqual(rowChunks([]), []);
});

Deno.test("rowChunks: sizes without 1 cannot cover every count", () => {
  assert.throws(() => rowChunks([1, 2, 3], [2]), RangeError);
});

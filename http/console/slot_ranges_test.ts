import assert from "node:assert/strict";
import { slotRanges } from "./slot_ranges.ts";

Deno.test("slotRanges.parse: numbers and ranges, commas or spaces; anything else is null", () => {
  assert.deepEqual(slotRanges.parse("1-4"), [1, 2, 3, 4]);
  assert.deepEqual(slotRanges.parse(" 7, 1-2 9 "), [7, 1, 2, 9]);
  assert.deepEqual(slotRanges.parse("0"), [0]);
  assert.deepEqual(slotRanges.parse("3,3"), [3, 3], "repeats are the schema's to refuse");
  for (const bad of ["", " , ", "a", "1-", "-1", "4-2", "1.5", "1-2-3", "12345678901"]) {
    assert.equal(slotRanges.parse(bad), null, bad);
  }
  assert.equal(slotRanges.parse("1-999999999", 100)!.length, 101, "stops just past the limit");
  assert.equal(slotRanges.parse("1-60 100-199", 100)!.length, 101);
});

Deno.test("slotRanges.format: sorted, repeats dropped, runs as ranges", () => {
  assert.equal(slotRanges.format([5, 1, 2, 3, 10, 11, 3]), "1-3,5,10-11");
  assert.equal(slotRanges.format([]), "");
  assert.equal(slotRanges.format([4]), "4");
  assert.deepEqual(slotRanges.parse(slotRanges.format([1, 2, 3, 5, 7, 8])), [1, 2, 3, 5, 7, 8]);
});

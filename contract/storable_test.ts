import assert from "node:assert/strict";
import { AMOUNT_MAX, SQL_INT_MAX, sqlInt, storableJsonObject, unstorableJson } from "./storable.ts";
import { describeIssues } from "../lib/describe_issues.ts";

const nested = (levels: number): unknown => levels === 0 ? 1 : { a: nested(levels - 1) };

Deno.test("storable: INT range, well-formed text", () => {
  const storableText = () => ({ safeParse: (s: string) => ({ success: unstorableJson(s) === undefined }) });
  assert.equal(sqlInt().safeParse(SQL_INT_MAX).success, true);
  assert.equal(sqlInt().safeParse(SQL_INT_MAX + 1).success, false);
  assert.equal(sqlInt().safeParse(-2_147_483_649).success, false);
  assert.equal(AMOUNT_MAX < 1e10, true);
  assert.equal(storableText().safeParse("café ☕ 🍫").success, true);
  assert.equal(storableText().safeParse("x\ud800").success, false);
  assert.equal(storableText().safeParse("\udc00y").success, false);
});

Deno.test("storable JSON: a lone surrogate anywhere, or too deep, is named by its path", () => {
  assert.equal(unstorableJson({ a: ["ok", { b: "café 🍫" }] }), undefined);
  assert.deepEqual(unstorableJson({ a: ["ok", { b: "\ud800" }] })?.path, ["a", 1, "b"]);
  assert.deepEqual(unstorableJson({ ["k\udfff"]: 1 })?.path, ["k\udfff"]);
  // The payload is level 1: 31 levels are stored, 32 are not.
  assert.equal(unstorableJson(nested(31)), undefined);
  assert.match(unstorableJson(nested(32))!.message, /nested deeper than 31 levels/);
  assert.match(unstorableJson(JSON.parse("[".repeat(20_000) + "]".repeat(20_000)))!.message, /deeper/);
  const r = storableJsonObject().safeParse({ slot_no: 1, note: "\ud800" });
  assert.equal(r.success, false);
  assert.match(describeIssues(r.error!), /^note: contains a lone surrogate/);
});

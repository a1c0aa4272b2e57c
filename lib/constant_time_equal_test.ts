import assert from "node:assert/strict";
import { constantTimeEqual } from "./constant_time_equal.ts";

Deno.test("constantTimeEqual compares whole strings of any length", () => {
  assert.equal(constantTimeEqual("abc", "abc"), true);
  assert.equal(constantTimeEqual("abc", "abd"), false);
  assert.equal(constantTimeEqual("abc", "abcd"), false);
  assert.equal(constantTimeEqual("", ""), true);
  assert.equal(constantTimeEqual("", "a"), false);
  assert.equal(constantTimeEqual("ü", "u"), false);
});

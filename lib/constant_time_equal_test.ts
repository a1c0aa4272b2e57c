import assert from "node:assert/strict";
import { constantTimeEqual, constantTimeMatcher } from "./constant_time_equal.ts";

Deno.test("constantTimeEqual compares whole strings of any length", () => {
  assert.equal(constantTimeEqual("abc", "abc"), true);
  assert.equal(constantTimeEqual("abc", "abd"), false);
  assert.equal(constantTimeEqual("abc", "abcd"), false);
  assert.equal(constantTimeEqual("", ""), true);
  assert.equal(constantTimeEqual("", "a"), false);
  assert.equal(constantTimeEqual("ü", "u"), false);
});

Deno.test("constantTimeMatcher answers like constantTimeEqual against its one secret", () => {
  const matches = constantTimeMatcher("s3cret-token");
  assert.equal(matches("s3cret-token"), true);
  for (const other of ["s3cret-tokem", "s3cret-token ", "", "S3CRET-TOKEN"]) {
    assert.equal(matches(other), false, other);
    assert.equal(matches(other), constantTimeEqual(other, "s3cret-token"));
  }
});

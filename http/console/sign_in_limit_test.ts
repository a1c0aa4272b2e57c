import assert from "node:assert/strict";
import { SignInLimit } from "./sign_in_limit.ts";

Deno.test("SignInLimit: 5 wrong tokens, then one more every 10 s; each address on its own", () => {
  let now = 0;
  const limit = new SignInLimit({ now: () => now });
  const a = "192.0.2.10";
  for (let i = 1; i <= 4; i++) {
    assert.equal(limit.retryAfter(a), 0);
    assert.equal(limit.failed(a), false, `failure ${i} leaves attempts`);
  }
  assert.equal(limit.failed(a), true, "the fifth failure starts a lockout");
  assert.equal(limit.retryAfter(a), 10);
  assert.equal(limit.retryAfter("192.0.2.11"), 0, "another address is not affected");
  now = 3_500;
  assert.equal(limit.retryAfter(a), 7, "rounded up to whole seconds");
  now = 10_000;
  assert.equal(limit.retryAfter(a), 0, "one attempt back");
  assert.equal(limit.failed(a), true, "and a wrong one locks again at once");
  assert.equal(limit.retryAfter(a), 10);
});

Deno.test("SignInLimit: an IPv6 /64 is one client; IPv4-mapped is its IPv4; no address is one shared bucket", () => {
  const limit = new SignInLimit({ burst: 1, now: () => 0 });
  assert.equal(limit.failed("2001:db8:1:2::1"), true);
  assert.equal(limit.retryAfter("2001:db8:1:2:ffff:1:2:3"), 10, "same /64");
  assert.equal(limit.retryAfter("[2001:0db8:0001:0002:0000:0000:0000:0009]"), 10, "written out in full");
  assert.equal(limit.retryAfter("2001:db8:1:3::1"), 0, "another /64");
  assert.equal(limit.failed("::ffff:198.51.100.4"), true);
  assert.equal(limit.retryAfter("198.51.100.4"), 10);
  assert.equal(limit.failed("::1"), true);
  assert.equal(limit.retryAfter("::2"), 10, "loopback ::/64");
  assert.equal(limit.failed(undefined), true);
  assert.equal(limit.retryAfter(undefined), 10);
  assert.equal(limit.retryAfter("198.51.100.5"), 0);
});

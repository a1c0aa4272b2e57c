/**
 * @module constant_time_equal
 * Compares two secrets without leaking, through timing, how much of them matched. Both sides are
 * hashed first so that inputs of different lengths take the same time as equal-length ones.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** True when `a` and `b` are the same string; the time taken does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  return constantTimeMatcher(b)(a);
}

/**
 * `constantTimeEqual(candidate, secret)` with the secret's hash made once: for a check that runs
 * on every request (the API's bearer token), one hash per call instead of two.
 */
export function constantTimeMatcher(secret: string): (candidate: string) => boolean {
  const hs = sha256(secret);
  return (candidate) => timingSafeEqual(sha256(candidate), hs) && candidate.length === secret.length;
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/**
 * @module constant_time_equal
 * Compares two secrets without leaking, through timing, how much of them matched. Both sides are
 * hashed first so that inputs of different lengths take the same time as equal-length ones.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** True when `a` and `b` are the same string; the time taken does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a, "utf8").digest();
  const hb = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

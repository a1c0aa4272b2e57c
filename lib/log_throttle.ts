/**
 * @module log_throttle
 * At most one log line per interval for an event anyone on the network can cause (a broken
 * request, a denied hook call), so a flood of them cannot flood the log: the line that is written
 * says how many were left out since the last one.
 */

export class LogThrottle {
  readonly #intervalMs: number;
  readonly #now: () => number;
  #last = -Infinity;
  #skipped = 0;

  constructor(intervalMs = 10_000, now: () => number = () => performance.now()) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Null: leave this one out. A number: write it, noting that many left out before it. */
  take(): number | null {
    const now = this.#now();
    if (now - this.#last < this.#intervalMs) {
      this.#skipped++;
      return null;
    }
    this.#last = now;
    const skipped = this.#skipped;
    this.#skipped = 0;
    return skipped;
  }
}

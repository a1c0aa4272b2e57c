/**
 * @module rate_sampler
 * Messages per second for the system page's chart: every `intervalMs` it reads a running total
 * (the uplink's received counter) and keeps the last `size` rates. Started on the first look at
 * the system page, so a console nobody opens costs nothing; `close()` stops it.
 */

export class RateSampler {
  readonly #read: () => Promise<number>;
  readonly #intervalMs: number;
  readonly #size: number;
  readonly #rates: number[] = [];
  #last?: { total: number; at: number };
  #timer?: ReturnType<typeof setInterval>;

  constructor(read: () => Promise<number>, intervalMs = 5000, size = 120) {
    this.#read = read;
    this.#intervalMs = intervalMs;
    this.#size = size;
  }

  /** The rates so far, oldest first; starts sampling if it has not yet. */
  rates(): number[] {
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.sample(), this.#intervalMs);
      void this.sample();
    }
    return [...this.#rates];
  }

  async sample(): Promise<void> {
    const total = await this.#read().catch(() => undefined);
    if (total === undefined) return;
    const at = Date.now();
    if (this.#last && at > this.#last.at) {
      this.#rates.push(Math.max(0, ((total - this.#last.total) * 1000) / (at - this.#last.at)));
      if (this.#rates.length > this.#size) this.#rates.shift();
    }
    this.#last = { total, at };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

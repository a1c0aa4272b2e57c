/**
 * @module keyed_rate_limit
 * A token bucket per key (a client's address): `take(key)` is true while the key has tokens left,
 * refilled at `perSecond` up to `burst`. At most `maxKeys` buckets are kept (the oldest go first;
 * a key seen again starts full), so a flood of fresh addresses cannot grow memory. `waitMs(key)`
 * looks without taking: a caller that charges only some requests (failed sign-ins) asks first and
 * takes only when the request turns out to cost.
 */

export interface KeyedRateLimitOptions {
  perSecond: number;
  burst: number;
  maxKeys?: number;
  now?: () => number;
}

export class KeyedRateLimit {
  readonly #o: Required<KeyedRateLimitOptions>;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(o: KeyedRateLimitOptions) {
    this.#o = { ...o, maxKeys: o.maxKeys ?? 10_000, now: o.now ?? (() => performance.now()) };
  }

  take(key: string): boolean {
    const now = this.#o.now();
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#o.maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = { tokens: this.#o.burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = this.#tokens(bucket, now);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  /** Milliseconds until `key` has a token (0: it has one now); takes nothing. */
  waitMs(key: string): number {
    const bucket = this.#buckets.get(key);
    if (!bucket) return 0;
    const tokens = this.#tokens(bucket, this.#o.now());
    return tokens >= 1 ? 0 : ((1 - tokens) * 1000) / this.#o.perSecond;
  }

  #tokens(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.#o.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#o.perSecond);
  }
}

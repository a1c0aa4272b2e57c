/**
 * @module expiring_set
 * A set whose entries are forgotten `ttlMs` after they were added, holding at most `maxSize` (the
 * oldest go first): a short, bounded memory such as "this login was refused a moment ago".
 */

export class ExpiringSet {
  readonly #ttlMs: number;
  readonly #maxSize: number;
  readonly #now: () => number;
  readonly #until = new Map<string, number>();

  constructor(o: { ttlMs: number; maxSize: number; now?: () => number }) {
    this.#ttlMs = o.ttlMs;
    this.#maxSize = o.maxSize;
    this.#now = o.now ?? (() => performance.now());
  }

  get size(): number {
    return this.#until.size;
  }

  has(key: string): boolean {
    const until = this.#until.get(key);
    if (until === undefined) return false;
    if (this.#now() < until) return true;
    this.#until.delete(key);
    return false;
  }

  add(key: string): void {
    this.#until.delete(key); // re-added: now the newest
    if (this.#until.size >= this.#maxSize) this.#until.delete(this.#until.keys().next().value!);
    this.#until.set(key, this.#now() + this.#ttlMs);
  }

  delete(key: string): void {
    this.#until.delete(key);
  }
}

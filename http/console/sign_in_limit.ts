/**
 * @module sign_in_limit
 * How many wrong tokens one client address may try at the console's sign-in: `burst` (5) at once,
 * then one more every `refillSeconds` (10). Only failures are charged; a correct token never is.
 * While an address has no attempt left it is not let near the token check at all, so a right
 * guess during a lockout gains nothing. An IPv6 address counts by its /64 (one host usually has a
 * whole /64 to pick addresses from); an IPv4-mapped one as its IPv4 address. Without an address
 * (no connection info) every client shares one bucket, "unknown". At most `maxKeys` addresses are
 * remembered (lib/keyed_rate_limit.ts), so a flood of fresh addresses cannot grow memory.
 */
import { KeyedRateLimit } from "../../lib/keyed_rate_limit.ts";

export interface SignInLimitOptions {
  /** Wrong tokens an address may send back to back (default 5). */
  burst?: number;
  /** Seconds until one more attempt comes back (default 10). */
  refillSeconds?: number;
  maxKeys?: number;
  /** Milliseconds, for tests (default performance.now). */
  now?: () => number;
}

export class SignInLimit {
  readonly #limit: KeyedRateLimit;

  constructor(o: SignInLimitOptions = {}) {
    this.#limit = new KeyedRateLimit({
      burst: o.burst ?? 5,
      perSecond: 1 / (o.refillSeconds ?? 10),
      maxKeys: o.maxKeys ?? 10_000,
      now: o.now,
    });
  }

  /** Whole seconds `address` must wait before its next attempt; 0: it may try now. */
  retryAfter(address: string | undefined): number {
    return Math.ceil(this.#limit.waitMs(keyOf(address)) / 1000);
  }

  /** Charges one wrong token to `address`; true when that was its last attempt (a lockout starts). */
  failed(address: string | undefined): boolean {
    const key = keyOf(address);
    this.#limit.take(key);
    return this.#limit.waitMs(key) > 0;
  }
}

/** The bucket an address counts in: IPv4 as is, IPv6 by its /64. */
function keyOf(address: string | undefined): string {
  if (!address) return "unknown";
  const a = address.toLowerCase().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  if (!a.includes(":")) return a;
  const [head, tail] = a.split("::", 2) as [string, string | undefined];
  const split = (s: string | undefined) => (s ? s.split(":") : []);
  const width = (groups: string[]) => groups.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
  const before = split(head);
  const after = split(tail);
  const zeros = tail === undefined ? 0 : Math.max(0, 8 - width(before) - width(after));
  const groups = [...before, ...Array<string>(zeros).fill("0"), ...after];
  const prefix = groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(":")}::/64`;
}

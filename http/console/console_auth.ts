/**
 * @module console_auth
 * Who is signed in to the console. Signing in with `API_TOKEN` makes an operator, with
 * `VIEWER_TOKEN` a viewer (sees everything, changes nothing). The cookie holds no token: it is
 * `role.expiry.mac`, the MAC an HMAC-SHA256 keyed by a digest of that role's token, so any gateway
 * process with the same tokens accepts it, and changing a token signs out everyone who used it.
 * The CSRF token of a session is an HMAC of its cookie (a form field or `X-CSRF-Token` header);
 * the cookie is also `SameSite=Strict`, and POSTs from another origin are refused.
 */
import { createHash, createHmac } from "node:crypto";
import { constantTimeMatcher } from "../../lib/constant_time_equal.ts";

export type ConsoleRole = "operator" | "viewer";

export interface Session {
  role: ConsoleRole;
  expiresAt: number;
  csrf: string;
}

export interface ConsoleAuthOptions {
  apiToken: string;
  viewerToken?: string;
  /** How long a sign-in lasts (default 12 hours). */
  ttlMs?: number;
  now?: () => number;
}

export const SESSION_COOKIE = "console_session";

const keyOf = (token: string) => createHash("sha256").update(`star-cloud-console\0${token}`).digest();
const mac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest("base64url");

export class ConsoleAuth {
  readonly #keys: Map<ConsoleRole, Buffer>;
  readonly #isApi: (s: string) => boolean;
  readonly #isViewer?: (s: string) => boolean;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(o: ConsoleAuthOptions) {
    if (o.viewerToken !== undefined && o.viewerToken === o.apiToken) {
      throw new Error("VIEWER_TOKEN must differ from API_TOKEN");
    }
    this.#keys = new Map([["operator", keyOf(o.apiToken)]]);
    if (o.viewerToken) this.#keys.set("viewer", keyOf(o.viewerToken));
    this.#isApi = constantTimeMatcher(o.apiToken);
    this.#isViewer = o.viewerToken ? constantTimeMatcher(o.viewerToken) : undefined;
    this.#ttlMs = o.ttlMs ?? 12 * 3600_000;
    this.#now = o.now ?? Date.now;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  /** The role a token signs in as, or null. */
  roleOf(token: string): ConsoleRole | null {
    if (this.#isApi(token)) return "operator";
    if (this.#isViewer?.(token)) return "viewer";
    return null;
  }

  /** A cookie value for a new session of `role`. */
  issue(role: ConsoleRole): string {
    const body = `${role}.${this.#now() + this.#ttlMs}`;
    return `${body}.${mac(this.#keys.get(role)!, body)}`;
  }

  /** The session a cookie value stands for, or null (bad MAC, expired, role without a token). */
  verify(cookie: string | undefined): Session | null {
    if (!cookie) return null;
    const parts = cookie.split(".");
    if (parts.length !== 3) return null;
    const [role, expiry, given] = parts as [string, string, string];
    const key = this.#keys.get(role as ConsoleRole);
    if (!key || !/^\d+$/.test(expiry)) return null;
    const expected = mac(key, `${role}.${expiry}`);
    if (!constantTimeMatcher(expected)(given)) return null;
    const expiresAt = Number(expiry);
    if (expiresAt <= this.#now()) return null;
    return { role: role as ConsoleRole, expiresAt, csrf: mac(key, `csrf.${cookie}`).slice(0, 32) };
  }
}

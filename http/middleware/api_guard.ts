/**
 * @module api_guard
 * What every `/api/*` route gets, whichever sub-app serves it (commands, machines, tokens, the
 * device service's proxies), in this order:
 *
 * 1. the bearer token, read from the headers alone: a request without the right one is 401 before
 *    it costs anything else (no in-flight slot, no byte of its body read);
 * 2. a cap on requests in flight, so a load the gateway cannot keep up with is answered 503 at once
 *    instead of growing the heap;
 * 3. the body, read with a size cap (413) and a deadline (408) before the route runs.
 *
 * Before, the cap and the body came first: 260 unauthenticated requests trickling a chunked body
 * held every slot, and the back office's own requests were answered 503.
 */
import type { Hono, MiddlewareHandler } from "hono";
import { UnavailableError } from "../../lib/errors.ts";
import { bearerAuth } from "./bearer_auth.ts";
import { DEFAULT_BODY_TIMEOUT_MS, readBody } from "./read_body.ts";

export interface ApiGuardOptions {
  apiToken: string;
  maxBodyBytes: number;
  maxInFlight: number;
  /** Deadline for a request's body; default {@link DEFAULT_BODY_TIMEOUT_MS}. */
  bodyTimeoutMs?: number;
}

/** Rejects with 503 (and `Retry-After: 1`) while `max` requests are already being served. */
export function inFlightLimit(max: number): MiddlewareHandler {
  let inFlight = 0;
  return async (c, next) => {
    if (inFlight >= max) {
      c.header("Retry-After", "1");
      throw new UnavailableError(
        `Too many API requests in flight (HTTP_MAX_IN_FLIGHT=${max}); retry shortly`,
      );
    }
    inFlight++;
    try {
      await next();
    } finally {
      inFlight--;
    }
  };
}

/** Registers the guard on `app` for `/api/*`; call before mounting the routes it protects. */
// deno-lint-ignore no-explicit-any
export function guardApi(app: Hono<any, any, any>, o: ApiGuardOptions): void {
  app.use(
    "/api/*",
    bearerAuth(o.apiToken),
    inFlightLimit(o.maxInFlight),
    readBody({ maxBytes: o.maxBodyBytes, timeoutMs: o.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS }),
  );
}

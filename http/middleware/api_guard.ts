/**
 * @module api_guard
 * What every `/api/*` route gets, whichever sub-app serves it (commands, machines, tokens, the
 * device service's proxies): a body size cap, the bearer token, and a cap on requests in flight,
 * so a load the gateway cannot keep up with is answered 503 at once instead of growing the heap.
 */
import type { Hono, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { PayloadTooLargeError, UnavailableError } from "../../lib/errors.ts";
import { bearerAuth } from "./bearer_auth.ts";

export interface ApiGuardOptions {
  apiToken: string;
  maxBodyBytes: number;
  maxInFlight: number;
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
    inFlightLimit(o.maxInFlight),
    bodyLimit({
      maxSize: o.maxBodyBytes,
      onError: () => {
        throw new PayloadTooLargeError(`Request body exceeds ${o.maxBodyBytes} bytes (HTTP_MAX_BODY_BYTES)`);
      },
    }),
    bearerAuth(o.apiToken),
  );
}

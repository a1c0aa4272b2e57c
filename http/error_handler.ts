/**
 * @module error_handler
 * The one place where errors become HTTP answers: `{"error": {"code", "message"}}` with the
 * status of the named error, never a stack trace. What a client's own broken request causes (a
 * body cut off or too slow, Deno's "BadResource: Cannot read request body") is logged as one
 * line without a stack, at most one such line every 10 s, since anyone can cause it.
 */
import { getLogger } from "@logtape/logtape";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { BadRequestError, GatewayError, RequestTimeoutError } from "../lib/errors.ts";
import { LogThrottle } from "../lib/log_throttle.ts";

const log = getLogger(["gateway", "http"]);
const clientErrors = new LogThrottle(10_000);
const serverErrors = new Map<string, LogThrottle>();

/** Deno's errors for a request whose client went away while its body was read. */
function isClientAbort(error: Error): boolean {
  return error.name === "BadResource" || error.name === "Interrupted" || error.name === "ConnectionReset" ||
    /request body|connection (closed|reset)/i.test(error.message);
}

function logClientError(c: Context, message: string): void {
  const skipped = clientErrors.take();
  if (skipped === null) return;
  log.info("{method} {path}: {message} ({skipped} more such requests since the last line)", {
    method: c.req.method,
    path: c.req.path,
    message,
    skipped,
  });
}

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function onError(error: Error, c: Context): Response {
  if (error instanceof BadRequestError || error instanceof RequestTimeoutError) {
    logClientError(c, error.message);
  } else if (!(error instanceof GatewayError) && !(error instanceof HTTPException) && isClientAbort(error)) {
    logClientError(c, `${error.name}: ${error.message}`);
    return c.json(errorBody("bad_request", "The request could not be read"), 400);
  }
  if (error instanceof GatewayError) {
    if (error.status >= 500) {
      // A 503 under load or during an outage comes once per request: one line per kind every 10 s.
      let throttle = serverErrors.get(error.name);
      if (!throttle) serverErrors.set(error.name, throttle = new LogThrottle(10_000));
      const skipped = throttle.take();
      if (skipped !== null) {
        log.error("{method} {path} failed: {error} ({skipped} more such errors since the last line)", {
          method: c.req.method,
          path: c.req.path,
          error,
          skipped,
        });
      }
    }
    return c.json(errorBody(error.code, error.message), error.status as ContentfulStatusCode);
  }
  if (error instanceof HTTPException) {
    const status = error.status as ContentfulStatusCode;
    const code = status === 401 ? "unauthorized" : status === 413 ? "payload_too_large" : "bad_request";
    return c.json(errorBody(code, error.message || "Bad request"), status);
  }
  log.error("{method} {path} failed: {error}", { method: c.req.method, path: c.req.path, error });
  return c.json(errorBody("internal_error", "Internal server error"), 500);
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `No route for ${c.req.method} ${c.req.path}`), 404);
}

/**
 * @module error_handler
 * The one place where errors become HTTP answers: `{"error": {"code", "message"}}` with the
 * status of the named error, never a stack trace.
 */
import { getLogger } from "@logtape/logtape";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { GatewayError } from "../lib/errors.ts";

const log = getLogger(["gateway", "http"]);

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function onError(error: Error, c: Context): Response {
  if (error instanceof GatewayError) {
    if (error.status >= 500) {
      log.error("{method} {path} failed: {error}", { method: c.req.method, path: c.req.path, error });
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

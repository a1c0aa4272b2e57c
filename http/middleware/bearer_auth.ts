/**
 * @module bearer_auth
 * `Authorization: Bearer <API_TOKEN>` on every `/api/*` route. The comparison takes the same
 * time wherever the tokens differ; a missing or wrong token is 401 with the gateway's JSON error.
 */
import type { MiddlewareHandler } from "hono";
import { UnauthorizedError } from "../../lib/errors.ts";
import { constantTimeMatcher } from "../../lib/constant_time_equal.ts";

export function bearerAuth(token: string): MiddlewareHandler {
  if (!token) throw new Error("bearerAuth needs a non-empty token");
  const matches = constantTimeMatcher(token);
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || !matches(match[1]!)) {
      c.header("WWW-Authenticate", 'Bearer realm="api"');
      throw new UnauthorizedError(
        match ? "Wrong bearer token" : "Missing bearer token: send Authorization: Bearer <API_TOKEN>",
      );
    }
    await next();
  };
}

/**
 * @module openapi
 * What every OpenAPI sub-app of the HTTP API shares: an `OpenAPIHono` whose validation failures
 * answer 422 in the gateway's error shape, the error schema, and the bearer security scheme.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { describeIssues } from "../lib/describe_issues.ts";
import { errorBody, notFound } from "./error_handler.ts";

export const BEARER = "bearer";

export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "invalid_request" }),
    message: z.string().openapi({ example: "ttl_seconds: Too big: expected number to be <=2592000" }),
  }),
}).openapi("Error");

/** `{description, content}` of an error response, for `createRoute({responses})`. */
export function errorResponse(description: string) {
  return { description, content: { "application/json": { schema: ErrorSchema } } };
}

/** Responses every bearer-protected route can give. */
export const COMMON_ERRORS = {
  401: errorResponse("Missing or wrong bearer token"),
  413: errorResponse("Request body larger than HTTP_MAX_BODY_BYTES"),
  422: errorResponse("The request does not match the schema"),
} as const;

/**
 * A sub-app: bad input → 422 `{"error": {"code": "invalid_request", "message"}}`. Errors thrown by
 * its routes are mapped by the root app's `onError` (app/gateway.ts; a test's own root), not here:
 * Hono wraps every route of a sub-app that has its own error handler in a handler composed per
 * request, once per level of mounting (15 % of the downlink's allocations at 1,000 commands/s).
 */
export function apiApp(): OpenAPIHono {
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (!result.success) {
        return c.json(errorBody("invalid_request", describeIssues(result.error as z.ZodError)), 422);
      }
    },
  });
  app.notFound(notFound);
  return app;
}

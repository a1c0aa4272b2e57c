/**
 * @module tokens
 * Machine credentials (seed 004's B014): `POST /api/v1/machines/{serial_no}/token` issues a new
 * token (rotating any old one) and shows it once; `DELETE` revokes it. Both end the machine's open
 * MQTT sessions on the brokers the gateway can reach (`sessions`): a broker checks a token only when
 * a client connects.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { getLogger } from "@logtape/logtape";
import type { MachineCredentials } from "../../auth/machine_credentials.ts";
import type { MachineSessions } from "../../auth/machine_sessions.ts";
import { SerialParam } from "./machines.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";

const log = getLogger(["gateway", "auth"]);

export function tokenRoutes(
  deps: { credentials: MachineCredentials; sessions?: MachineSessions },
): OpenAPIHono {
  const app = apiApp();
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/machines/{serial_no}/token",
      tags: ["tokens"],
      summary: "Issue (or rotate) a machine's MQTT token",
      description: "The machine connects with username = serial_no and password = api_token. The token is " +
        "shown only here; the gateway keeps its SHA-256 (database and Redis machine_auth:{serial_no}). " +
        "Issuing again rotates: the previous token stops working at once, and the machine's open MQTT " +
        "sessions are closed (embedded broker; EMQX with EMQX_API_URL), so it must reconnect with the new " +
        "one. Registers the machine if new.",
      security: [{ [BEARER]: [] }],
      request: { params: SerialParam },
      responses: {
        201: {
          description: "The new token (shown once)",
          content: {
            "application/json": {
              schema: z.object({
                serial_no: z.string().openapi({ example: "M-001" }),
                api_token: z.string().openapi({ example: "q8Zb0m…" }),
                issued_at: z.string(),
              }).openapi("MachineToken"),
            },
          },
        },
        409: errorResponse("The serial_no is the gateway's own MQTT username"),
        503: errorResponse("Redis is unreachable; retry"),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { serial_no } = c.req.valid("param");
      const issued = await deps.credentials.issue(serial_no);
      // The token is shown once: a broker that cannot be told now must not cost the answer.
      await deps.sessions?.close(serial_no).catch((error) =>
        log.warn("Rotated the token of {serial_no}; its old sessions may stay up: {error}", {
          serial_no,
          error: (error as Error).message,
        })
      );
      c.header("Cache-Control", "no-store");
      return c.json({
        serial_no: issued.serialNo,
        api_token: issued.token,
        issued_at: issued.issuedAt.toISOString(),
      }, 201);
    },
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/v1/machines/{serial_no}/token",
      tags: ["tokens"],
      summary: "Revoke a machine's MQTT token",
      description:
        "New connections with the token are refused at once, and the machine's open MQTT sessions " +
        "are closed: on the embedded broker of this process, and on EMQX when EMQX_API_URL is set. Without " +
        "EMQX_API_URL a session open on an external broker stays up until it disconnects. 503 when a broker " +
        "could not be told (the token is revoked already): retry.",
      security: [{ [BEARER]: [] }],
      request: { params: SerialParam },
      responses: {
        204: { description: "Revoked" },
        404: errorResponse("No such machine"),
        503: errorResponse(
          "Redis is unreachable, or a broker could not be told to close the sessions; retry",
        ),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { serial_no } = c.req.valid("param");
      await deps.credentials.revoke(serial_no);
      await deps.sessions?.close(serial_no);
      return c.body(null, 204);
    },
  );
  return app;
}

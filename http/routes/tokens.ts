/**
 * @module tokens
 * Machine credentials (seed 004's B014): `POST /api/v1/machines/{serial_no}/token` issues a new
 * token (rotating any old one) and shows it once; `DELETE` revokes it.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MachineCredentials } from "../../auth/machine_credentials.ts";
import { SerialParam } from "./machines.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";

export function tokenRoutes(deps: { credentials: MachineCredentials }): OpenAPIHono {
  const app = apiApp();
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/machines/{serial_no}/token",
      tags: ["tokens"],
      summary: "Issue (or rotate) a machine's MQTT token",
      description: "The machine connects with username = serial_no and password = api_token. The token is " +
        "shown only here; the gateway keeps its SHA-256 (database and Redis machine_auth:{serial_no}). " +
        "Issuing again rotates: the previous token stops working at once. Registers the machine if new.",
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
      description: "New connections with the token are refused at once. A session already open stays until " +
        "it ends (disconnect it with EMQX's DELETE /api/v5/clients/{clientid} if needed).",
      security: [{ [BEARER]: [] }],
      request: { params: SerialParam },
      responses: {
        204: { description: "Revoked" },
        404: errorResponse("No such machine"),
        503: errorResponse("Redis is unreachable; retry"),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { serial_no } = c.req.valid("param");
      await deps.credentials.revoke(serial_no);
      return c.body(null, 204);
    },
  );
  return app;
}

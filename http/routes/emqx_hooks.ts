/**
 * @module emqx_hooks
 * EMQX 5 HTTP authentication and authorization backends, answering with EMQX's contract:
 * always HTTP 200 with `{"result": "allow" | "deny", "is_superuser": bool}` (a malformed request
 * is a deny, never an error EMQX would read as "ignore").
 *
 * - `POST /emqx/authn` body `{"clientid": "${clientid}", "username": "${username}", "password": "${password}"}`
 * - `POST /emqx/authz` body `{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}", "action": "${action}"}`
 *
 * The policy is the shared {@link BrokerAuth} (auth/machine_auth.ts). See deploy/emqx/.
 */
import { getLogger } from "@logtape/logtape";
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { BrokerAuth } from "../../auth/broker_auth.ts";
import { apiApp } from "../openapi.ts";

const log = getLogger(["gateway", "auth"]);

const str = z.unknown().transform((v) => typeof v === "string" ? v : "");
const AuthnRequest = z.object({
  clientid: z.string().optional().openapi({ example: "M-001" }),
  username: z.string().optional().openapi({ example: "M-001" }),
  password: z.string().optional().openapi({ example: "<the machine's api_token>" }),
}).openapi("EmqxAuthnRequest");
const AuthzRequest = z.object({
  clientid: z.string().optional().openapi({ example: "M-001" }),
  username: z.string().optional().openapi({ example: "M-001" }),
  topic: z.string().optional().openapi({ example: "machine/M-001/heartbeat" }),
  action: z.enum(["publish", "subscribe"]).optional(),
}).openapi("EmqxAuthzRequest");
const HookResult = z.object({
  result: z.enum(["allow", "deny"]),
  is_superuser: z.boolean(),
}).openapi("EmqxHookResult");

async function readFields(c: Context, names: string[]): Promise<Record<string, string>> {
  let body: Record<string, unknown> = {};
  try {
    const parsed = await c.req.json();
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed;
  } catch {
    // Not JSON: every field empty, so the answer is deny.
  }
  return Object.fromEntries(names.map((n) => [n, str.parse(body[n])]));
}

export function emqxHookRoutes(deps: { auth: BrokerAuth }): OpenAPIHono {
  const app = apiApp();
  const answer = (c: Context, allow: boolean, superuser = false) =>
    c.json({ result: allow ? "allow" : "deny", is_superuser: allow && superuser }, 200);

  app.post("/emqx/authn", async (c) => {
    const f = await readFields(c, ["clientid", "username", "password"]);
    try {
      const r = await deps.auth.authenticate(f.username!, f.password!, f.clientid!);
      if (!r.ok) {
        log.info("EMQX authn denied {username} ({clientid})", { username: f.username, clientid: f.clientid });
      }
      return answer(c, r.ok, r.superuser);
    } catch (error) {
      log.error("EMQX authn for {username} failed: {error}", { username: f.username, error });
      return answer(c, false);
    }
  });

  app.post("/emqx/authz", async (c) => {
    const f = await readFields(c, ["clientid", "username", "topic", "action"]);
    const action = f.action === "publish" || f.action === "subscribe" ? f.action : undefined;
    try {
      const ok = action !== undefined && f.topic !== "" &&
        await deps.auth.authorize(f.username!, action, f.topic!);
      if (!ok) {
        log.info("EMQX authz denied {username}: {action} {topic}", {
          username: f.username,
          action: f.action,
          topic: f.topic,
        });
      }
      return answer(c, ok);
    } catch (error) {
      log.error("EMQX authz for {username} failed: {error}", { username: f.username, error });
      return answer(c, false);
    }
  });

  // Documented in the OpenAPI document; handled above so that bad input is a deny, not a 4xx.
  const doc = (path: string, summary: string, schema: z.ZodType) =>
    app.openAPIRegistry.registerPath({
      method: "post",
      path,
      tags: ["emqx"],
      summary,
      request: { body: { content: { "application/json": { schema } } } },
      responses: {
        200: { description: "EMQX's answer format", content: { "application/json": { schema: HookResult } } },
      },
    });
  doc("/emqx/authn", "EMQX 5 HTTP authentication: may this client connect?", AuthnRequest);
  doc(
    "/emqx/authz",
    "EMQX 5 HTTP authorization: may this client publish / subscribe to this topic?",
    AuthzRequest,
  );
  return app;
}

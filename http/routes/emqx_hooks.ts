/**
 * @module emqx_hooks
 * EMQX 5 HTTP authentication and authorization backends, answering with EMQX's contract: always
 * HTTP 200 with `{"result": "allow" | "deny" | "ignore", "is_superuser": bool}`, whatever the
 * request (a malformed, oversized or unauthenticated one is a deny, never a 4xx EMQX would not read).
 *
 * - `POST /emqx/authn` body `{"clientid": "${clientid}", "username": "${username}", "password": "${password}"}`
 * - `POST /emqx/authz` body `{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}", "action": "${action}"}`
 *
 * The hooks are open by design (EMQX calls them), so they stay cheap under abuse:
 * - with `EMQX_HOOK_SECRET` set, a call without that `x-hook-secret` header is denied before
 *   its body is read (EMQX sends it: `headers` in deploy/emqx/http/emqx.conf);
 * - a body is read up to 64 KB within 5 s, else deny (EMQX's bodies are a few hundred bytes);
 * - authn, the only hook behind which the database is read: a refused login (same username,
 *   client id and password) is refused again from memory for 5 s; at most 32 checks run at once
 *   and each source address may start `EMQX_HOOK_CHECKS_PER_SECOND` (200) a second, 5 s worth at
 *   once (a reconnecting fleet): beyond that the answer is `ignore` at once (EMQX then tries its next authenticator or refuses), nothing waits in a queue;
 * - authz is decided in memory (the topic policy) and is never limited: a denied publish is a
 *   lost message;
 * - denials are logged at most once every 10 s, with the count of those left out.
 *
 * The policy is the shared {@link BrokerAuth} (auth/machine_auth.ts). See deploy/emqx/.
 */
import { createHash } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { BrokerAuth } from "../../auth/broker_auth.ts";
import { constantTimeMatcher } from "../../lib/constant_time_equal.ts";
import { ExpiringSet } from "../../lib/expiring_set.ts";
import { KeyedRateLimit } from "../../lib/keyed_rate_limit.ts";
import { clientAddress } from "../client_address.ts";
import { LogThrottle } from "../../lib/log_throttle.ts";
import type { Metrics } from "../../lib/metrics.ts";
import { readBodyBytes } from "../middleware/read_body.ts";
import { apiApp } from "../openapi.ts";

const log = getLogger(["gateway", "auth"]);

/** The header EMQX sends with `EMQX_HOOK_SECRET` (configured in its `headers`). */
export const HOOK_SECRET_HEADER = "x-hook-secret";

export interface EmqxHookOptions {
  auth: BrokerAuth;
  /** `EMQX_HOOK_SECRET`: calls without it in {@link HOOK_SECRET_HEADER} are denied. */
  secret?: string;
  metrics?: Metrics;
  maxBodyBytes?: number;
  bodyTimeoutMs?: number;
  /** How long a refused login is refused from memory. */
  denialTtlMs?: number;
  /** Authn checks (database reads) running at once, beyond which the answer is `ignore`. */
  maxChecks?: number;
  /** Authn checks a source address may start per second, and at once. */
  perSourcePerSecond?: number;
  perSourceBurst?: number;
}

export const HOOK_DEFAULTS = {
  maxBodyBytes: 64 * 1024,
  bodyTimeoutMs: 5000,
  denialTtlMs: 5000,
  maxChecks: 32,
  perSourcePerSecond: 200,
  perSourceBurst: 1000,
} as const;

type Answer = "allow" | "deny" | "deny_cached" | "deny_request" | "ignore_busy" | "ignore_rate";

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
  result: z.enum(["allow", "deny", "ignore"]),
  is_superuser: z.boolean(),
}).openapi("EmqxHookResult");

/** The JSON fields of the body; null when it cannot be read (too large, too slow, broken). */
async function readFields(
  c: Context,
  names: string[],
  o: { maxBytes: number; timeoutMs: number },
): Promise<Record<string, string> | null> {
  let bytes: Uint8Array;
  try {
    bytes = await readBodyBytes(c.req.raw, o);
  } catch {
    return null;
  }
  let body: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed;
  } catch {
    // Not JSON: every field empty, so the answer is deny.
  }
  return Object.fromEntries(names.map((n) => [n, str.parse(body[n])]));
}

/** The caller's address (Deno.serve's connection info), or "unknown" (app.request in tests). */
const sourceOf = (c: Context): string => clientAddress(c) ?? "unknown";

export function emqxHookRoutes(options: EmqxHookOptions): OpenAPIHono {
  const o = { ...HOOK_DEFAULTS, ...options };
  const app = apiApp();
  const body = { maxBytes: o.maxBodyBytes, timeoutMs: o.bodyTimeoutMs };
  const secretMatches = o.secret ? constantTimeMatcher(o.secret) : undefined;
  const denials = new ExpiringSet({ ttlMs: o.denialTtlMs, maxSize: 10_000 });
  const perSource = new KeyedRateLimit({ perSecond: o.perSourcePerSecond, burst: o.perSourceBurst });
  const denialLog = { authn: new LogThrottle(), authz: new LogThrottle(), request: new LogThrottle() };
  let checking = 0;

  const answer = (c: Context, hook: "authn" | "authz", a: Answer, superuser = false) => {
    o.metrics?.emqxHooks.inc({ hook, answer: a });
    const result = a === "allow" ? "allow" : a.startsWith("ignore") ? "ignore" : "deny";
    return c.json({ result, is_superuser: result === "allow" && superuser }, 200);
  };
  const badRequest = (c: Context, hook: "authn" | "authz", why: string) => {
    const skipped = denialLog.request.take();
    if (skipped !== null) {
      log.info("EMQX {hook} call from {source} denied: {why} ({skipped} more since the last line)", {
        hook,
        source: sourceOf(c),
        why,
        skipped,
      });
    }
    return answer(c, hook, "deny_request");
  };
  const authorized = (c: Context) => !secretMatches || secretMatches(c.req.header(HOOK_SECRET_HEADER) ?? "");

  app.post("/emqx/authn", async (c) => {
    if (!authorized(c)) return badRequest(c, "authn", `no valid ${HOOK_SECRET_HEADER} header`);
    const f = await readFields(c, ["clientid", "username", "password"], body);
    if (!f) return badRequest(c, "authn", "body too large, too slow or broken");
    const key = createHash("sha256").update(`${f.username}\0${f.clientid}\0${f.password}`).digest("base64");
    if (denials.has(key)) return answer(c, "authn", "deny_cached");
    if (checking >= o.maxChecks) return answer(c, "authn", "ignore_busy");
    if (!perSource.take(sourceOf(c))) return answer(c, "authn", "ignore_rate");
    checking++;
    try {
      const r = await o.auth.authenticate(f.username!, f.password!, f.clientid!);
      if (r.ok) return answer(c, "authn", "allow", r.superuser);
      denials.add(key);
      const skipped = denialLog.authn.take();
      if (skipped !== null) {
        log.info("EMQX authn denied {username} ({clientid}) ({skipped} more denials since the last line)", {
          username: f.username,
          clientid: f.clientid,
          skipped,
        });
      }
      return answer(c, "authn", "deny");
    } catch (error) {
      log.error("EMQX authn for {username} failed: {error}", { username: f.username, error });
      return answer(c, "authn", "deny");
    } finally {
      checking--;
    }
  });

  app.post("/emqx/authz", async (c) => {
    if (!authorized(c)) return badRequest(c, "authz", `no valid ${HOOK_SECRET_HEADER} header`);
    const f = await readFields(c, ["clientid", "username", "topic", "action"], body);
    if (!f) return badRequest(c, "authz", "body too large, too slow or broken");
    const action = f.action === "publish" || f.action === "subscribe" ? f.action : undefined;
    try {
      const ok = action !== undefined && f.topic !== "" &&
        await o.auth.authorize(f.username!, action, f.topic!);
      if (!ok) {
        const skipped = denialLog.authz.take();
        if (skipped !== null) {
          log.info("EMQX authz denied {username}: {action} {topic} ({skipped} more since the last line)", {
            username: f.username,
            action: f.action,
            topic: f.topic,
            skipped,
          });
        }
      }
      return answer(c, "authz", ok ? "allow" : "deny");
    } catch (error) {
      log.error("EMQX authz for {username} failed: {error}", { username: f.username, error });
      return answer(c, "authz", "deny");
    }
  });

  // Documented in the OpenAPI document; handled above so that bad input is a deny, not a 4xx.
  const doc = (path: string, summary: string, schema: z.ZodType) =>
    app.openAPIRegistry.registerPath({
      method: "post",
      path,
      tags: ["emqx"],
      summary,
      description: `Open to EMQX (no bearer token); with EMQX_HOOK_SECRET set, only calls carrying it in ` +
        `${HOOK_SECRET_HEADER}. Always 200 in EMQX's format; "ignore" (authn only) when too many checks ` +
        "are running or this source calls too often.",
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

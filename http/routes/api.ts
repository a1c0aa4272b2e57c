/**
 * @module api
 * The HTTP API as one app: `/api/v1/*` (bearer token, then body size cap and deadline), the EMQX
 * hooks (their own limits, see emqx_hooks.ts), and the OpenAPI document and docs page.
 * `app/gateway.ts` mounts it beside the health routes.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MachineCredentials } from "../../auth/machine_credentials.ts";
import type { BrokerAuth } from "../../auth/broker_auth.ts";
import type { CommandIntake } from "../../downlink/command_intake.ts";
import type { Store } from "../../db/store.ts";
import type { MachineSessions } from "../../auth/machine_sessions.ts";
import type { Metrics } from "../../lib/metrics.ts";
import type { PresenceTracker } from "../../lib/presence.ts";
import type { ReliableQueue } from "../../queue/reliable_queue.ts";
import { type DeadLetterQueue, deadLetterRoutes } from "./dead_letters.ts";
import type { EventHub } from "../../lib/event_hub.ts";
import { eventRoutes } from "./events.ts";
import { guardApi } from "../middleware/api_guard.ts";
import { commandRoutes } from "./commands.ts";
import { mountDocs } from "../docs.ts";
import { emqxHookRoutes } from "./emqx_hooks.ts";
import { machineRoutes } from "./machines.ts";
import { slotRoutes } from "./slots.ts";
import { apiApp } from "../openapi.ts";
import { tokenRoutes } from "./tokens.ts";

export interface ApiDeps {
  apiToken: string;
  maxBodyBytes: number;
  store: Store;
  intake: CommandIntake;
  credentials: MachineCredentials;
  /** Where a revoked or rotated machine's open sessions are ended; none: they stay up. */
  sessions?: MachineSessions;
  brokerAuth: BrokerAuth;
  /** `EMQX_HOOK_SECRET`. */
  hookSecret?: string;
  /** `EMQX_HOOK_CHECKS_PER_SECOND`. */
  hookChecksPerSecond?: number;
  metrics?: Metrics;
  onlineWindowSeconds: number;
  maxTtlSeconds?: number;
  version?: string;
  /** False when the enclosing app already guards `/api/*` (the gateway does, for every sub-app). */
  guard?: boolean;
  maxInFlight?: number;
  presence?: PresenceTracker;
  /** The queues whose dead letters `/api/v1/queues/{queue}/dead-letters` shows and replays. */
  deadLetters?: Partial<Record<DeadLetterQueue, ReliableQueue>>;
  /** Live events at `/api/v1/events`; `signal` ends the streams. */
  events?: { hub: EventHub; signal: AbortSignal };
}

export function apiRoutes(deps: ApiDeps): OpenAPIHono {
  const app = apiApp();
  if (deps.guard !== false) {
    guardApi(app, {
      apiToken: deps.apiToken,
      maxBodyBytes: deps.maxBodyBytes,
      maxInFlight: deps.maxInFlight ?? 256,
    });
  }
  app.route(
    "/",
    machineRoutes({
      store: deps.store,
      onlineWindowSeconds: deps.onlineWindowSeconds,
      presence: deps.presence,
    }),
  );
  app.route("/", slotRoutes({ store: deps.store }));
  app.route(
    "/",
    commandRoutes({ store: deps.store, intake: deps.intake, maxTtlSeconds: deps.maxTtlSeconds }),
  );
  app.route("/", tokenRoutes({ credentials: deps.credentials, sessions: deps.sessions }));
  if (deps.deadLetters) app.route("/", deadLetterRoutes(deps.deadLetters));
  if (deps.events) app.route("/", eventRoutes(deps.events));
  app.route(
    "/",
    emqxHookRoutes({
      auth: deps.brokerAuth,
      secret: deps.hookSecret,
      metrics: deps.metrics,
      ...(deps.hookChecksPerSecond
        ? { perSourcePerSecond: deps.hookChecksPerSecond, perSourceBurst: deps.hookChecksPerSecond * 5 }
        : {}),
    }),
  );
  mountDocs(app, { version: deps.version ?? "1" });
  return app;
}

/**
 * @module api
 * The HTTP API as one app: `/api/v1/*` (bearer token, body size cap), the EMQX hooks, and the
 * OpenAPI document and docs page. `app/gateway.ts` mounts it beside the health routes.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { MachineCredentials } from "../../auth/machine_credentials.ts";
import type { BrokerAuth } from "../../auth/broker_auth.ts";
import type { CommandIntake } from "../../downlink/command_intake.ts";
import type { Store } from "../../db/store.ts";
import { PayloadTooLargeError } from "../../lib/errors.ts";
import { guardApi } from "../middleware/api_guard.ts";
import { commandRoutes } from "./commands.ts";
import { mountDocs } from "../docs.ts";
import { emqxHookRoutes } from "./emqx_hooks.ts";
import { machineRoutes } from "./machines.ts";
import { apiApp } from "../openapi.ts";
import { tokenRoutes } from "./tokens.ts";

export interface ApiDeps {
  apiToken: string;
  maxBodyBytes: number;
  store: Store;
  intake: CommandIntake;
  credentials: MachineCredentials;
  brokerAuth: BrokerAuth;
  onlineWindowSeconds: number;
  maxTtlSeconds?: number;
  version?: string;
  /** False when the enclosing app already guards `/api/*` (the gateway does, for every sub-app). */
  guard?: boolean;
  maxInFlight?: number;
}

export function apiRoutes(deps: ApiDeps): OpenAPIHono {
  const app = apiApp();
  const limit = bodyLimit({
    maxSize: deps.maxBodyBytes,
    onError: () => {
      throw new PayloadTooLargeError(`Request body exceeds ${deps.maxBodyBytes} bytes (HTTP_MAX_BODY_BYTES)`);
    },
  });
  if (deps.guard !== false) {
    guardApi(app, {
      apiToken: deps.apiToken,
      maxBodyBytes: deps.maxBodyBytes,
      maxInFlight: deps.maxInFlight ?? 256,
    });
  }
  app.use("/emqx/*", limit);
  app.route("/", machineRoutes({ store: deps.store, onlineWindowSeconds: deps.onlineWindowSeconds }));
  app.route(
    "/",
    commandRoutes({ store: deps.store, intake: deps.intake, maxTtlSeconds: deps.maxTtlSeconds }),
  );
  app.route("/", tokenRoutes({ credentials: deps.credentials }));
  app.route("/", emqxHookRoutes({ auth: deps.brokerAuth }));
  mountDocs(app, { version: deps.version ?? "1" });
  return app;
}

/**
 * @module mount_routes
 * Puts the gateway's HTTP surface together on one Hono app: the health routes (with a readiness
 * check per backend in use), the `/api/*` guard, then the API and the device service's routes.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Hono } from "hono";
import type { DeviceService } from "../devices/device_service.ts";
import type { Metrics } from "../lib/metrics.ts";
import { type ApiGuardOptions, guardApi } from "./middleware/api_guard.ts";
import { type Check, healthRoutes } from "./routes/health.ts";
import { proxyRoutes } from "./routes/proxies.ts";
import { mountDocs } from "./docs.ts";
import { apiApp } from "./openapi.ts";

export interface MountedParts {
  connection?: { readonly connected: boolean; readonly broker: string; readonly state?: string };
  queues?: { ping(): Promise<void> };
  store?: { ping(): Promise<void> };
  status: () => Promise<unknown>;
  metrics: Metrics;
  guard: ApiGuardOptions;
  /** The HTTP API of the commands centre (role `api`). */
  api?: OpenAPIHono;
  devices?: DeviceService;
}

export function mountRoutes(app: Hono, parts: MountedParts): void {
  const checks: Record<string, Check> = {};
  const { connection, queues, store } = parts;
  if (connection) {
    checks.broker = () => {
      if (!connection.connected) throw new Error(`not connected to ${connection.broker}`);
    };
  }
  if (queues) checks.queue = () => queues.ping();
  if (store) checks.database = () => store.ping();
  app.route(
    "/",
    healthRoutes({
      checks,
      status: parts.status,
      connection,
      metrics: parts.metrics,
      apiToken: parts.guard.apiToken,
    }),
  );
  // Before the routes it protects: Hono applies middleware only to routes registered after it.
  guardApi(app, parts.guard);
  if (parts.api) app.route("/", parts.api);
  if (parts.devices) {
    const proxies = proxyRoutes(parts.devices);
    // One document for every route served: the proxies join the API's, or have it to themselves.
    const docs = parts.api ?? docsApp(app);
    // OpenAPIHono.route() copies the sub-app's definitions into the document's registry.
    docs.route("/", proxies);
    app.route("/", proxies);
  }
}

/** `/openapi.json` and `/docs` for a process without the `api` role. */
function docsApp(app: Hono): OpenAPIHono {
  const docs = apiApp();
  mountDocs(docs, { version: "1" });
  app.route("/", docs);
  return docs;
}

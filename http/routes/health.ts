/**
 * @module health
 * For probes, open to anyone (they tell only up / ready and which backend is not):
 * `GET /healthz` (the process answers), `GET /readyz` (broker, queue and database reachable).
 * `GET /mqtt/status` without an `Authorization` header answers what seed 000's `curl …/mqtt/status`
 * checks, whether the gateway is connected to its broker, and nothing more (read from memory: no
 * backend is asked). With the API's bearer token (`API_TOKEN`), since they show client ids, queue
 * names, share group, backends and traffic: the whole `GET /mqtt/status` (connection, subscriptions,
 * counters, queue depths, backends) and `GET /metrics` (Prometheus text; Prometheus sends the token with
 * `authorization: {credentials_file: …}` in its scrape config).
 */
import { Hono } from "hono";
import type { Metrics } from "../../lib/metrics.ts";
import { bearerAuth } from "../middleware/bearer_auth.ts";

export type Check = () => Promise<void> | void;

export interface HealthDeps {
  /** Named readiness checks; each throws when its part is not reachable. */
  checks: Record<string, Check>;
  status: () => Promise<unknown>;
  /** The broker connection, for the public part of `/mqtt/status`. */
  connection?: { readonly connected: boolean; readonly state?: string };
  metrics: Metrics;
  /** The bearer token `/mqtt/status` and `/metrics` need. */
  apiToken: string;
}

export function healthRoutes(deps: HealthDeps): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const results = await Promise.all(
      Object.entries(deps.checks).map(async ([name, check]) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) =>
              timer = setTimeout(() => reject(new Error("timed out after 2 s")), 2000)
            ),
          ]);
          return [name, { ok: true }] as const;
        } catch (error) {
          return [name, { ok: false, error: (error as Error).message }] as const;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const ready = results.every(([, r]) => r.ok);
    return c.json(
      { status: ready ? "ready" : "not_ready", checks: Object.fromEntries(results) },
      ready ? 200 : 503,
    );
  });
  const token = bearerAuth(deps.apiToken);
  app.get("/mqtt/status", async (c, next) => {
    if (c.req.header("authorization") !== undefined) return await token(c, next);
    const connected = deps.connection?.connected ?? false;
    return c.json({
      connected,
      state: deps.connection?.state ??
        (deps.connection ? (connected ? "connected" : "connecting") : "disabled"),
      details: "send Authorization: Bearer <API_TOKEN> for subscriptions, counters, queues and backends",
    });
  }, async (c) => c.json(await deps.status()));
  app.get("/metrics", token, async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.text(body, 200, { "content-type": deps.metrics.registry.contentType });
  });
  return app;
}

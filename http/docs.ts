/**
 * @module docs
 * `GET /openapi.json` (the OpenAPI 3 document of every route, health included) and `GET /docs`
 * (a readable page rendering it, self-contained: no CDN, works offline).
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { BEARER } from "./openapi.ts";
import { DOCS_PAGE } from "./docs_page.ts";

/** Adds the document and the page to `app`, whose registry holds every mounted route. */
export function mountDocs(app: OpenAPIHono, info: { version: string }): void {
  app.openAPIRegistry.registerComponent("securitySchemes", BEARER, {
    type: "http",
    scheme: "bearer",
    description: "API_TOKEN (printed once at start when not set)",
  });
  const plain = (
    path: string,
    summary: string,
    description: string,
    type = "application/json",
    tag = "health",
  ) =>
    app.openAPIRegistry.registerPath({
      method: "get",
      path,
      tags: [tag],
      summary,
      responses: {
        200: {
          description,
          content: {
            [type]: { schema: type === "application/json" ? z.record(z.string(), z.unknown()) : z.string() },
          },
        },
      },
    });
  plain("/healthz", "The process answers", 'Always {"status":"ok"}');
  plain("/readyz", "Broker, queue and database reachable", "Ready (503 with the failing checks otherwise)");
  plain("/mqtt/status", "Broker connection, subscriptions, counters, queue depths", "Status");
  plain("/metrics", "Prometheus metrics", "Prometheus text format", "text/plain");
  plain("/openapi.json", "This document (OpenAPI 3)", "The OpenAPI document", "application/json", "docs");
  plain("/docs", "This document as a readable page (self-contained)", "HTML page", "text/html", "docs");

  app.doc("/openapi.json", {
    openapi: "3.0.3",
    info: {
      title: "Star Cloud MQTT gateway",
      version: info.version,
      description: "Vending machines ↔ MQTT ↔ Redis ↔ back office. Every /api/* route needs " +
        'Authorization: Bearer <API_TOKEN>. Errors are {"error": {"code", "message"}}.',
    },
  });
  app.get("/docs", (c) => c.html(DOCS_PAGE));
}

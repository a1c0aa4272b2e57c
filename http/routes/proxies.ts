/**
 * @module proxies
 * The device service's HTTP API (seed 000):
 * - `GET /api/v1/proxies`: every configured proxy with its last health event and history summary.
 * - `GET /api/v1/proxies/{proxyid}`: one of them.
 * - `POST /api/v1/proxies/{proxyid}/controller/start`: calls the proxy's controller start (a JSON
 *   request body, if any, is passed on), publishes the result on
 *   `mcs/events/ProxyService/status/{proxyid}` and answers with the event: 200 when it started,
 *   504 when the proxy timed out, 502 when it refused or failed (`{"error": {...}, "event": {...}}`).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { DeviceService } from "../../devices/device_service.ts";
import { PayloadTooLargeError, ValidationError } from "../../lib/errors.ts";
import { errorBody } from "../error_handler.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse, ErrorSchema } from "../openapi.ts";

const MAX_BODY_CHARS = 64 * 1024;

function parseProxyid(text: string): number {
  if (!/^\d{1,15}$/.test(text)) {
    throw new ValidationError(`proxyid must be a whole number (got ${JSON.stringify(text)})`);
  }
  return Number(text);
}

async function readJsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.length > MAX_BODY_CHARS) {
    throw new PayloadTooLargeError(`The request body exceeds ${MAX_BODY_CHARS} characters`);
  }
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError(`The request body is not JSON: ${(error as Error).message}`, { cause: error });
  }
}

const ProxyidParam = z.object({
  proxyid: z.string().openapi({ param: { name: "proxyid", in: "path" }, example: "1" }),
});

const Proxy = z.object({
  proxyid: z.number().int().openapi({ example: 1 }),
  name: z.string().nullable(),
  base_url: z.string().openapi({ example: "http://127.0.0.1:5555" }),
  health_path: z.string().openapi({ example: "/health" }),
  controller_start_path: z.string().openapi({ example: "/controller/start" }),
  timeout_ms: z.number().int(),
  interval_ms: z.number().int(),
}).passthrough().openapi("Proxy", {
  description: "A configured proxy (credentials removed from base_url), its last event and check history",
});

const ControllerStart = z.object({
  proxyid: z.number().int(),
  status: z.string().openapi({ example: "controller_started" }),
  event: z.record(z.string(), z.unknown()).openapi({
    description: "What was published on mcs/events/ProxyService/status/{proxyid}",
  }),
  published: z.unknown(),
}).openapi("ControllerStart");

const ControllerStartFailed = ErrorSchema.extend(ControllerStart.shape).openapi("ControllerStartFailed");

export function proxyRoutes(service: DeviceService): OpenAPIHono {
  const app = apiApp();
  const security = [{ [BEARER]: [] }];
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/proxies",
      tags: ["proxies"],
      summary: "Every configured proxy (role devices)",
      security,
      responses: {
        200: {
          description: "The proxies",
          content: { "application/json": { schema: z.object({ proxies: z.array(Proxy) }) } },
        },
        ...COMMON_ERRORS,
      },
    }),
    (c) => c.json({ proxies: service.proxies() }, 200),
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/proxies/{proxyid}",
      tags: ["proxies"],
      summary: "One proxy, its last event and history",
      security,
      request: { params: ProxyidParam },
      responses: {
        200: { description: "The proxy", content: { "application/json": { schema: Proxy } } },
        404: errorResponse("No proxy with this proxyid is configured"),
        ...COMMON_ERRORS,
      },
    }),
    (c) => c.json(service.proxy(parseProxyid(c.req.param("proxyid"))), 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/proxies/{proxyid}/controller/start",
      tags: ["proxies"],
      summary: "Start the proxy's controller",
      description:
        "Calls the proxy's controller start (a JSON request body, if any, is passed on as it is), " +
        "publishes the result on mcs/events/ProxyService/status/{proxyid} and answers with the event.",
      security,
      // The body is not declared: any JSON (or none) is passed on as it is, read by the handler.
      request: { params: ProxyidParam },
      responses: {
        200: { description: "Started", content: { "application/json": { schema: ControllerStart } } },
        404: errorResponse("No proxy with this proxyid is configured"),
        502: {
          description: "The proxy refused or failed (proxy_unreachable, proxy_failed)",
          content: { "application/json": { schema: ControllerStartFailed } },
        },
        504: {
          description: "The proxy did not answer in time (proxy_timeout)",
          content: { "application/json": { schema: ControllerStartFailed } },
        },
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const proxyid = parseProxyid(c.req.param("proxyid"));
      const body = await readJsonBody(c.req.raw);
      const { event, outcome, published } = await service.startController(proxyid, body);
      const result = { proxyid, status: event.status, event, published };
      if (outcome.kind === "ok") return c.json(result, 200);
      const [status, code, message]: [502 | 504, string, string] = outcome.kind === "timeout"
        ? [504, "proxy_timeout", `Proxy ${proxyid} did not answer within ${outcome.timeoutMs} ms`]
        : outcome.kind === "connection_error"
        ? [502, "proxy_unreachable", `Cannot reach proxy ${proxyid}: ${outcome.error}`]
        : [502, "proxy_failed", `Proxy ${proxyid} answered HTTP ${outcome.httpStatus}`];
      return c.json({ ...errorBody(code, message), ...result }, status);
    },
  );
  return app;
}

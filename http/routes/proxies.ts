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
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { DeviceService } from "../../devices/device_service.ts";
import { PayloadTooLargeError, ValidationError } from "../../lib/errors.ts";
import { errorBody } from "../error_handler.ts";

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

export function proxyRoutes(service: DeviceService): Hono {
  const app = new Hono();
  app.get("/api/v1/proxies", (c) => c.json({ proxies: service.proxies() }));
  app.get("/api/v1/proxies/:proxyid", (c) => c.json(service.proxy(parseProxyid(c.req.param("proxyid")))));
  app.post("/api/v1/proxies/:proxyid/controller/start", async (c) => {
    const proxyid = parseProxyid(c.req.param("proxyid"));
    const body = await readJsonBody(c.req.raw);
    const { event, outcome, published } = await service.startController(proxyid, body);
    const result = { proxyid, status: event.status, event, published };
    if (outcome.kind === "ok") return c.json(result, 200);
    const [status, code, message]: [ContentfulStatusCode, string, string] = outcome.kind === "timeout"
      ? [504, "proxy_timeout", `Proxy ${proxyid} did not answer within ${outcome.timeoutMs} ms`]
      : outcome.kind === "connection_error"
      ? [502, "proxy_unreachable", `Cannot reach proxy ${proxyid}: ${outcome.error}`]
      : [502, "proxy_failed", `Proxy ${proxyid} answered HTTP ${outcome.httpStatus}`];
    return c.json({ ...errorBody(code, message), ...result }, status);
  });
  return app;
}

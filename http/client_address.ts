/**
 * @module client_address
 * The TCP peer's address of a request, as `Deno.serve` hands it to the app (its handler info is
 * Hono's `c.env`: `remoteAddr`). `X-Forwarded-For` is never read: any client can write it. Behind a
 * reverse proxy every request therefore comes from the proxy's address. Undefined without
 * connection info (`app.request()` in tests, a Unix socket).
 */
import type { Context } from "hono";

export function clientAddress(c: Context): string | undefined {
  const info = c.env as { remoteAddr?: { hostname?: unknown } } | undefined;
  const hostname = info?.remoteAddr?.hostname;
  return typeof hostname === "string" && hostname !== "" ? hostname : undefined;
}

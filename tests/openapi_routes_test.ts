/**
 * @module openapi_routes_test
 * Every route the gateway serves, with every role on (the device service's proxies included), is in
 * `/openapi.json` with its method, and the document names no route that is not served. The one
 * exception is the operator console (`/console…` and the `/` redirect to it): HTML pages and form
 * posts for a browser, not an API, described in docs/console.md.
 */
import assert from "node:assert/strict";
import { Gateway } from "../app/gateway.ts";
import { loadConfig } from "../config.ts";
import { startStandIn } from "./fakes/proxy_stand_in.ts";

/** Browser pages, not API: docs/console.md describes them (checked below). */
const CONSOLE = (route: string) => / \/console(\/|$)/.test(route) || route === "GET /";

/** Hono's `/a/:id` as OpenAPI's `/a/{id}`. */
const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

async function servedAndDocumented(env: Record<string, string>) {
  const gateway = new Gateway(loadConfig(env));
  try {
    await gateway.start();
    const served = new Set(
      gateway.app.routes
        .filter((r) => r.method !== "ALL") // middleware (`app.use`), not routes
        .map((r) => `${r.method} ${openApiPath(r.path)}`),
    );
    const doc = await (await gateway.app.request("/openapi.json")).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`)
      ),
    );
    return { served, documented };
  } finally {
    await gateway.close();
  }
}

for (const roles of ["uplink,worker,downlink,api,devices", "devices"]) {
  Deno.test(`roles ${roles}: the routes served and the routes in /openapi.json are the same`, async () => {
    const proxy = startStandIn("healthy");
    const dataDir = await Deno.makeTempDir({ prefix: "gw-openapi-" });
    try {
      const { served, documented } = await servedAndDocumented({
        GATEWAY_ROLES: roles,
        DATA_DIR: dataDir,
        MQTT_LISTEN_PORT: "0",
        DEVICE_PROXIES: JSON.stringify([{ proxyid: 1, base_url: proxy.url, interval_ms: 60_000 }]),
        LOG_LEVEL: "error",
      });
      assert.ok(served.has("GET /api/v1/proxies/{proxyid}"), [...served].join("\n"));
      const pages = [...served].filter(CONSOLE);
      if (pages.length > 0) {
        const consoleDoc = await Deno.readTextFile(new URL("../docs/console.md", import.meta.url));
        assert.match(consoleDoc, /`\/console`/, "the console's pages are described in docs/console.md");
      }
      assert.deepEqual(
        [...served].filter((r) => !documented.has(r) && !CONSOLE(r)).sort(),
        [],
        "served, not documented",
      );
      assert.deepEqual([...documented].filter((r) => !served.has(r)).sort(), [], "documented, not served");
    } finally {
      await proxy.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  });
}

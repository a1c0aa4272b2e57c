/**
 * @module route_access_test
 * Who may call what, on every route the gateway serves (all roles and the device service on):
 * every route Hono has, and every path of the OpenAPI document among them, is called with no token,
 * a wrong token and the right one. Public: the probes (`/healthz`, `/readyz`), the API's
 * documentation (`/openapi.json`, `/docs`) and the EMQX hooks (open to EMQX; their own secret,
 * see emqx_hooks.ts). `/mqtt/status` without a token answers only whether the broker is connected
 * (seed 000's check), and is 401 with a wrong one. Everything else, `/metrics` included, is 401
 * without the right token. A route added later is walked too, and must be listed here if it is to be public.
 * The operator console (`/console/*`, and `/` that redirects there) has its own session, a signed cookie
 * (http/console/console_auth.ts, tested in console_routes_test.ts): a bearer token signs nobody in, so
 * without a cookie its pages redirect to the sign-in page and everything else is 401.
 */
import assert from "node:assert/strict";
import { Gateway } from "../app/gateway.ts";
import { SERVICES, startGateway, testEnv } from "./support.ts";

const PUBLIC = new Set([
  "GET /healthz",
  "GET /readyz",
  "GET /openapi.json",
  "GET /docs",
  "POST /emqx/authn",
  "POST /emqx/authz",
]);

/** The console's routes anyone may call: the way in and what the sign-in page needs. */
const CONSOLE_PUBLIC = new Set([
  "GET /",
  "GET /console/sign-in",
  "POST /console/sign-in",
  "GET /console/assets/:file",
  "GET /console/lang/:lang",
]);

const PARAMS: Record<string, string> = {
  serial_no: "M-ACCESS",
  message_id: "00000000-0000-4000-8000-000000000000",
  proxyid: "424242",
};

Deno.test("every route: public ones answer anyone, the rest are 401 without the right token", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config({
    // No session left behind on the shared broker.
    MQTT_SESSION_EXPIRY: "0",
    DEVICE_PROXIES: JSON.stringify([{
      proxyid: 424242,
      base_url: "http://127.0.0.1:9",
      interval_ms: 60_000,
    }]),
    DEVICE_SUMMARY_INTERVAL_MS: "0",
  }));
  try {
    await startGateway(gateway);
    const routes = new Set(
      gateway.app.routes
        .filter((r) => r.method !== "ALL" && !r.path.includes("*"))
        .map((r) => `${r.method} ${r.path}`),
    );
    const doc = await (await gateway.app.request("/openapi.json")).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        const route = `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`;
        assert.ok(routes.has(route), `${route} of the OpenAPI document is served`);
      }
    }
    for (
      const name of [
        "GET /mqtt/status",
        "GET /metrics",
        "GET /api/v1/proxies",
        "POST /emqx/authn",
        "PUT /api/v1/machines/:serial_no/slots",
      ]
    ) {
      assert.ok(routes.has(name), `${name} is among the routes walked`);
    }
    for (const pub of PUBLIC) assert.ok(routes.has(pub), `${pub} exists`);

    const call = async (route: string, token?: string) => {
      const [method, pattern] = route.split(" ") as [string, string];
      const path = pattern.replace(/:(\w+)/g, (_, name: string) => PARAMS[name] ?? "x");
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      const res = await gateway.app.request(path, {
        method,
        headers,
        body: method === "GET" || method === "DELETE" ? undefined : JSON.stringify({ command: "reboot" }),
      });
      await res.body?.cancel();
      return res.status;
    };
    const seen: string[] = [];
    for (const route of [...routes].sort()) {
      const none = await call(route);
      const wrong = await call(route, "not-the-api-token-0123456789");
      const right = await call(route, gateway.apiToken);
      seen.push(`${route}: ${none}/${wrong}/${right}`);
      if (route === "GET /" || route.includes(" /console")) {
        if (!CONSOLE_PUBLIC.has(route)) {
          for (const status of [none, wrong, right]) {
            assert.ok(status === 303 || status === 401, `${route} without a console session: ${status}`);
          }
        }
        continue;
      }
      assert.notEqual(right, 401, `${route} with the right token`);
      if (route === "GET /mqtt/status") {
        assert.equal(none, 200, `${route} answers its summary without a token`);
        assert.equal(wrong, 401, `${route} with a wrong token`);
      } else if (PUBLIC.has(route)) {
        assert.notEqual(none, 401, `${route} is public`);
        assert.notEqual(wrong, 401, `${route} is public`);
      } else {
        assert.equal(none, 401, `${route} without a token`);
        assert.equal(wrong, 401, `${route} with a wrong token`);
      }
    }
    assert.ok(seen.length >= 14, `walked ${seen.length} routes:\n${seen.join("\n")}`);
    // Without a token: whether the broker is connected, nothing that names a client, queue or figure.
    const summary = await (await gateway.app.request("/mqtt/status")).json();
    assert.deepEqual(Object.keys(summary).sort(), ["connected", "details", "state"]);
    assert.equal(summary.connected, true);
    assert.equal(summary.state, "connected");
  } finally {
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("/mqtt/status, /readyz and /metrics never show a broker password or the API token", async () => {
  const t = await testEnv();
  const password = `pw-${crypto.randomUUID()}`;
  const gateway = new Gateway(t.config({
    GATEWAY_ROLES: "uplink,api",
    MQTT_URL: `mqtt://gw-user:${password}@${new URL(SERVICES.mqtt).host}`,
    MQTT_SESSION_EXPIRY: "0",
  }));
  try {
    await startGateway(gateway);
    const auth = { authorization: `Bearer ${gateway.apiToken}` };
    for (const path of ["/mqtt/status", "/readyz", "/metrics", "/healthz"]) {
      const res = await gateway.app.request(path, { headers: auth });
      const text = await res.text();
      assert.equal(res.status, 200, `${path}: ${text}`);
      assert.ok(!text.includes(password), `${path} shows the broker password`);
      assert.ok(!text.includes(gateway.apiToken), `${path} shows the API token`);
    }
    const status = await (await gateway.app.request("/mqtt/status", { headers: auth })).json();
    assert.equal(status.broker, SERVICES.mqtt);
  } finally {
    await gateway.close();
    await t.cleanup();
  }
});

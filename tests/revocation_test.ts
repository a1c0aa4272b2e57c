/**
 * @module revocation_test
 * Revoking or rotating a machine's token ends the sessions it has open, not only its next CONNECT:
 * - embedded broker: the machine's connection is closed at once, its old token refused after;
 * - EMQX: with EMQX_API_URL + key the gateway asks EMQX's REST API to disconnect the machine's
 *   client ids (a stand-in HTTP server records the calls); when EMQX cannot be told, DELETE is 503.
 */
import assert from "node:assert/strict";
import mqtt, { type MqttClient } from "mqtt";
import { loadConfig } from "../config.ts";
import { Gateway } from "../app/gateway.ts";
import { startGateway, testEnv, uniqueId, waitFor } from "./support.ts";

const API_TOKEN = "revocation-test-api-token-0123";

function api(gateway: Gateway, method: string, path: string): Promise<Response> {
  return Promise.resolve(
    gateway.app.request(path, { method, headers: { authorization: `Bearer ${API_TOKEN}` } }),
  );
}

async function issue(gateway: Gateway, serial: string): Promise<string> {
  const res = await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
  assert.equal(res.status, 201);
  return (await res.json()).api_token;
}

function connect(gateway: Gateway, serial: string, token: string, clientId = serial): Promise<MqttClient> {
  return mqtt.connectAsync(gateway.embeddedBroker!.url, {
    protocolVersion: 4,
    clientId,
    username: serial,
    password: token,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected) return resolve();
    client.once("close", () => resolve());
  });
}

Deno.test("embedded broker: revoking or rotating a token disconnects the machine's open sessions now", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_revoke_" });
  const gateway = new Gateway(loadConfig({
    DATA_DIR: dataDir,
    MQTT_LISTEN_PORT: "0",
    MQTT_CLIENT_ID: uniqueId("gw-"),
    API_TOKEN,
    GATEWAY_ROLES: "uplink,worker,downlink,api",
    LOG_LEVEL: "error",
  }));
  const clients: MqttClient[] = [];
  try {
    await gateway.start();
    const token = await issue(gateway, "M-R1");
    const other = await issue(gateway, "M-R2");
    const a = await connect(gateway, "M-R1", token);
    const b = await connect(gateway, "M-R1", token, "M-R1:second");
    const bystander = await connect(gateway, "M-R2", other);
    clients.push(a, b, bystander);

    const res = await api(gateway, "DELETE", "/api/v1/machines/M-R1/token");
    assert.equal(res.status, 204);
    await Promise.race([
      Promise.all([closed(a), closed(b)]),
      new Promise((_, reject) => setTimeout(() => reject(new Error("sessions still open after 5 s")), 5000)),
    ]);
    assert.equal(bystander.connected, true, "another machine keeps its session");
    await assert.rejects(connect(gateway, "M-R1", token), "the revoked token is refused");

    // Rotation: the session on the old token ends too.
    const before = await connect(gateway, "M-R2", other, "M-R2:x");
    clients.push(before);
    const rotated = await issue(gateway, "M-R2");
    await waitFor(() => !before.connected && !bystander.connected, 5000, "M-R2's sessions to close");
    clients.push(await connect(gateway, "M-R2", rotated));
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await gateway.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("EMQX: revoking a token asks EMQX's REST API to disconnect the machine's client ids", async () => {
  const t = await testEnv();
  const calls: { method: string; path: string; auth: string | null }[] = [];
  let up = true;
  const stop = new AbortController();
  const emqx = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} },
    (req) => {
      const url = new URL(req.url);
      calls.push({
        method: req.method,
        path: url.pathname + url.search,
        auth: req.headers.get("authorization"),
      });
      if (!up) return new Response("down", { status: 503 });
      if (req.method === "GET") {
        const username = url.searchParams.get("username");
        return Response.json({
          data: [{ clientid: `${username}:tablet`, username }, { clientid: "someone-else", username }],
          meta: { count: 2 },
        });
      }
      return new Response(null, { status: url.pathname.endsWith(":tablet") ? 204 : 404 });
    },
  );
  const gateway = new Gateway(t.config({
    GATEWAY_ROLES: "api",
    API_TOKEN,
    EMQX_API_URL: `http://127.0.0.1:${emqx.addr.port}`,
    EMQX_API_KEY: "key-1",
    EMQX_API_SECRET: "secret-1",
  }));
  try {
    await startGateway(gateway);
    const serial = uniqueId("M-").replace(/[^A-Za-z0-9_-]/g, "");
    await issue(gateway, serial);
    calls.length = 0; // issuing a new machine's first token asks too (nothing to close)
    const res = await api(gateway, "DELETE", `/api/v1/machines/${serial}/token`);
    assert.equal(res.status, 204);
    const basic = `Basic ${btoa("key-1:secret-1")}`;
    assert.deepEqual(calls, [
      { method: "GET", path: `/api/v5/clients?username=${serial}&_limit=100`, auth: basic },
      { method: "DELETE", path: `/api/v5/clients/${serial}`, auth: basic },
      { method: "DELETE", path: `/api/v5/clients/${serial}%3Atablet`, auth: basic },
    ]);

    // EMQX cannot be told: the token is revoked all the same, and the answer says to retry.
    up = false;
    const again = await api(gateway, "DELETE", `/api/v1/machines/${serial}/token`);
    assert.equal(again.status, 503);
    assert.match((await again.json()).error.message, /Cannot close the open sessions of .*EMQX/);
  } finally {
    await gateway.close();
    stop.abort();
    await emqx.finished;
    await t.cleanup();
  }
});

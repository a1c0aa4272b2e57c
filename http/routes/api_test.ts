import assert from "node:assert/strict";
import { MachineAuth } from "../../auth/machine_auth.ts";
import { MachineCredentials } from "../../auth/machine_credentials.ts";
import { CommandIntake } from "../../downlink/command_intake.ts";
import { newCommandRecord } from "../../db/command_record.ts";
import type { CommandRecord, NewCommand, Store } from "../../db/store.ts";
import { apiRoutes } from "./api.ts";
import { onError } from "../error_handler.ts";
import { Hono } from "hono";
import { COMPOSED_HANDLER } from "hono/utils/constants";

const TOKEN = "unit-test-token-0123456789";

/** Just enough of a Store, in memory, for the routes. */
function memoryStore() {
  const machines = new Map<string, string | null>([["M-001", null]]);
  const commands = new Map<string, CommandRecord>();
  const create = (c: NewCommand) => {
    const existing = commands.get(c.messageId);
    if (existing) return { command: existing, created: false };
    const row = newCommandRecord(c);
    commands.set(c.messageId, row);
    return { command: row, created: true };
  };
  const store: Partial<Store> = {
    machineExists: (s) => Promise.resolve(machines.has(s)),
    setMachineToken: (s, hash) => {
      if (hash === null && !machines.has(s)) return Promise.resolve(false);
      machines.set(s, hash);
      return Promise.resolve(true);
    },
    getMachineTokenHash: (s) => Promise.resolve(machines.get(s) ?? null),
    createCommand: (c: NewCommand) => Promise.resolve(create(c)),
    createCommands: (cs) => Promise.resolve(cs.map(create)),
    getCommand: (id) => Promise.resolve(commands.get(id) ?? null),
    listCommands: (s) => Promise.resolve([...commands.values()].filter((c) => c.serialNo === s)),
    getMachine: () => Promise.resolve(null),
  };
  return { store: store as Store, machines, commands };
}

/** The API as the tests call it: its own root (`asRoot`), or as the gateway mounts it. */
function build(maxBodyBytes = 1024, asRoot = true) {
  const { store, machines } = memoryStore();
  const pushed: string[] = [];
  const credentials = new MachineCredentials({ store, gatewayUsername: "gw" });
  const app = apiRoutes({
    apiToken: TOKEN,
    maxBodyBytes,
    store,
    intake: new CommandIntake({
      store,
      queue: { push: (...raws) => Promise.resolve(void pushed.push(...raws)) },
      defaultTtlSeconds: 300,
    }),
    credentials,
    brokerAuth: new MachineAuth({ credentials, gateway: { username: "gw", password: "gw-secret" } }),
    onlineWindowSeconds: 180,
  });
  if (asRoot) app.onError(onError); // the root's error mapping (app/gateway.ts)
  const call = (method: string, path: string, body?: unknown, token: string | null = TOKEN) =>
    app.request(path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
  return { app, call, pushed, machines };
}

Deno.test("POST a command: 202, stored queued, the contract element (+ origin) pushed", async () => {
  const { call, pushed } = build();
  const res = await call("POST", "/api/v1/machines/M-001/commands", {
    command: "dispense",
    payload: { slot_no: 5 },
    message_id: "MSG_unit_1",
  });
  assert.equal(res.status, 202);
  const body = await res.json();
  assert.equal(body.message_id, "MSG_unit_1");
  assert.equal(body.status, "queued");
  // The contract's keys in its order, then the extension that marks the API's own elements.
  assert.deepEqual(pushed, [
    JSON.stringify({
      target: "M-001",
      command: "dispense",
      payload: { slot_no: 5 },
      message_id: "MSG_unit_1",
      origin: "api",
    }),
  ]);
  const again = await call("POST", "/api/v1/machines/M-001/commands", {
    command: "dispense",
    payload: { slot_no: 5 },
    message_id: "MSG_unit_1",
  });
  assert.equal(again.status, 200, "the same message_id is the same command");
  const clash = await call("POST", "/api/v1/machines/M-001/commands", {
    command: "reboot",
    message_id: "MSG_unit_1",
  });
  assert.equal(clash.status, 409);
});

Deno.test("bad requests: 401, 413, 422 for a bad TTL, 400 for invalid JSON, 404 for an unknown serial", async () => {
  const { call } = build(256);
  const path = "/api/v1/machines/M-001/commands";
  const expect = async (res: Response, status: number, code: string) => {
    assert.equal(res.status, status);
    const body = await res.json();
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, "string");
    assert.ok(!body.error.message.includes(" at "), "no stack trace");
  };
  await expect(await call("POST", path, { command: "x" }, null), 401, "unauthorized");
  await expect(await call("GET", "/api/v1/machines", undefined, "wrong"), 401, "unauthorized");
  await expect(
    await call("POST", path, { command: "x", payload: { b: "x".repeat(400) } }),
    413,
    "payload_too_large",
  );
  await expect(await call("POST", path, { command: "x", ttl_seconds: 0 }), 422, "invalid_request");
  await expect(await call("POST", path, { command: "x", ttl_seconds: 1.5 }), 422, "invalid_request");
  await expect(await call("POST", path, { command: "x", ttl_seconds: 10 ** 9 }), 422, "invalid_request");
  await expect(await call("POST", path, { command: "bad command" }), 422, "invalid_request");
  await expect(await call("POST", path, { payload: {} }), 422, "invalid_request");
  await expect(await call("POST", path, "{oops"), 400, "bad_request");
  await expect(await call("POST", "/api/v1/machines/M-404/commands", { command: "x" }), 404, "not_found");
  await expect(await call("GET", "/api/v1/commands/MSG_none"), 404, "not_found");
  await expect(await call("DELETE", "/api/v1/machines/M-404/token"), 404, "not_found");
});

Deno.test("a command payload the database cannot store is a 422 naming the field; the next good one is accepted", async () => {
  const { call, pushed } = build(4096);
  const path = "/api/v1/machines/M-001/commands";
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = { a: deep };
  const refused: [unknown, RegExp][] = [
    [{ command: "x", payload: { note: "\ud800" } }, /^payload\.note: contains a lone surrogate/],
    [{ command: "x", payload: { list: ["ok", "x\udfff"] } }, /^payload\.list\.1: contains a lone surrogate/],
    [{ command: "x", payload: { ["k\ud800"]: 1 } }, /^payload\.k.: key contains a lone surrogate/],
    [{ command: "x", payload: (deep as { a: unknown }).a }, /^payload(\.a)+: nested deeper than 31 levels/],
  ];
  for (const [body, message] of refused) {
    const res = await call("POST", path, body);
    assert.equal(res.status, 422);
    const answer = await res.json();
    assert.equal(answer.error.code, "invalid_request");
    assert.match(answer.error.message, message);
  }
  assert.deepEqual(pushed, [], "nothing refused was queued");
  const ok = await call("POST", path, { command: "x", payload: { note: "café 🍫" } });
  assert.equal(ok.status, 202);
  assert.equal(pushed.length, 1);
});

Deno.test("token issue → the EMQX hook allows; wrong, rotated and revoked tokens and other topics are denied", async () => {
  const { call } = build();
  const issued = await call("POST", "/api/v1/machines/M-002/token");
  assert.equal(issued.status, 201);
  const { api_token: token, serial_no } = await issued.json();
  assert.equal(serial_no, "M-002");
  assert.ok(token.length >= 40);
  const authn = async (
    username: string,
    password: string,
    clientid = username,
  ) => (await (await call("POST", "/emqx/authn", { clientid, username, password }, null)).json());
  const authz = async (username: string, action: string, topic: string) =>
    (await (await call("POST", "/emqx/authz", { clientid: username, username, action, topic }, null)).json())
      .result;

  assert.deepEqual(await authn("M-002", token), { result: "allow", is_superuser: false });
  assert.equal((await authn("M-002", token + "x")).result, "deny");
  assert.equal((await authn("M-001", token)).result, "deny", "another machine's token");
  assert.equal((await authn("M-002", token, "someone-else")).result, "deny", "client id must be the serial");
  assert.equal((await authn("M-002", token, "M-002:app")).result, "allow");
  assert.deepEqual(await authn("gw", "gw-secret", "gw-1"), { result: "allow", is_superuser: true });
  assert.equal((await authn("gw", "nope", "gw-1")).result, "deny");

  assert.equal(await authz("M-002", "publish", "machine/M-002/heartbeat"), "allow");
  assert.equal(await authz("M-002", "subscribe", "machine/M-002/command"), "allow");
  assert.equal(await authz("M-002", "publish", "machine/M-001/heartbeat"), "deny");
  assert.equal(await authz("M-002", "publish", "machine/M-001/command"), "deny");
  assert.equal(await authz("M-002", "publish", "machine/M-002/command"), "deny");
  assert.equal(await authz("gw", "publish", "machine/M-002/command"), "allow");

  const rotated = await (await call("POST", "/api/v1/machines/M-002/token")).json();
  assert.equal((await authn("M-002", token)).result, "deny", "the old token stops working at once");
  assert.equal((await authn("M-002", rotated.api_token)).result, "allow");
  assert.equal((await call("DELETE", "/api/v1/machines/M-002/token")).status, 204);
  assert.equal((await authn("M-002", rotated.api_token)).result, "deny", "revoked");

  const junk = await call("POST", "/emqx/authn", "not json", null);
  assert.equal(junk.status, 200);
  assert.deepEqual(await junk.json(), { result: "deny", is_superuser: false });
  assert.equal(await authz("M-002", "all", "machine/M-002/heartbeat"), "deny");
});

Deno.test("/openapi.json documents the routes and /docs is a self-contained page", async () => {
  const { app } = build();
  const doc = await (await app.request("/openapi.json")).json();
  assert.equal(doc.openapi, "3.0.3");
  for (
    const path of [
      "/api/v1/machines",
      "/api/v1/machines/{serial_no}",
      "/api/v1/machines/{serial_no}/commands",
      "/api/v1/commands/{message_id}",
      "/api/v1/machines/{serial_no}/token",
      "/emqx/authn",
      "/emqx/authz",
      "/healthz",
    ]
  ) assert.ok(doc.paths[path], path);
  assert.ok(doc.components.securitySchemes.bearer);
  assert.ok(doc.paths["/api/v1/machines/{serial_no}/commands"].post.requestBody);
  const page = await app.request("/docs");
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /openapi\.json/);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=["']?https?:/i, "no external assets");
  assert.doesNotMatch(html, /https?:\/\//, "no URL to fetch from the internet");
});

Deno.test("the API mounts without a per-request wrapper: errors are mapped by the root app only", async () => {
  const { app } = build(1024, false);
  const root = new Hono();
  root.onError(onError);
  root.route("/", app);
  // Hono wraps each route of a sub-app that has its own error handler in a handler composed per
  // request (marked with COMPOSED_HANDLER), once per level of mounting: 15 % of the downlink's
  // allocations when the API's sub-apps each had one.
  const wrapped = root.routes.filter((r) => COMPOSED_HANDLER in r.handler).map((r) =>
    `${r.method} ${r.path}`
  );
  assert.deepEqual(wrapped, []);
  assert.ok(
    root.routes.some((r) => r.path === "/api/v1/machines/:serial_no"),
    "the API's routes are mounted",
  );
  // ...and the root still maps what the routes throw (an unknown serial is a NotFoundError → 404).
  const r = await root.request("/api/v1/machines/NOPE", { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, "not_found");
});

/**
 * @module console_routes_test
 * Every console route through `app.request()`, and its auth: without a cookie (sign-in redirect or
 * 401), as a viewer (reads everything, every POST but sign-out is 403), as an operator (with the
 * CSRF token and from the same origin; without either, 403), and the limit on wrong tokens per client
 * address at sign-in (an injected clock; the address as Deno.serve hands it over, in `app.request`'s
 * env). Backed by a real SQLite store and
 * queue, a recording intake and credentials, and a device service over a stand-in proxy.
 */
import { configure, type LogRecord, reset } from "@logtape/logtape";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../../db/sqlite/sqlite_store.ts";
import { DeviceService } from "../../devices/device_service.ts";
import { parseProxyRegistry } from "../../devices/proxy_registry.ts";
import { EventHub } from "../../lib/event_hub.ts";
import { counterValues, createMetrics } from "../../lib/metrics.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { PresenceTracker } from "../../lib/presence.ts";
import { SqliteQueue } from "../../queue/sqlite/sqlite_queue.ts";
import { FakeConnection } from "../../tests/fakes/fake_connection.ts";
import { startStandIn } from "../../tests/fakes/proxy_stand_in.ts";
import { ConsoleAuth } from "./console_auth.ts";
import { type ConsoleDeps, consoleRoutes } from "./console_routes.tsx";
import { MESSAGES, pickLang } from "./i18n.ts";
import { SignInLimit } from "./sign_in_limit.ts";

const API_TOKEN = "console-test-api-token-0123";
const VIEWER_TOKEN = "console-test-viewer-token-0123";
const ORIGIN = "http://gw.test";

async function harness(extra: Partial<ConsoleDeps> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "gw_console_" });
  const store = new SqliteStore({ path: join(dir, "gateway.db") });
  await store.migrate();
  const qdb = SqliteQueue.openDatabase(join(dir, "queue.db"));
  const incoming = new SqliteQueue(qdb, "in", { consumerId: "t" });
  const outgoing = new SqliteQueue(qdb, "out", { consumerId: "t" });
  const hub = new EventHub({ flushMs: 10 });
  const presence = new PresenceTracker({ silenceMs: 180_000, hub });
  const accepted: { serialNo: string; command: string; payload: Record<string, unknown> }[] = [];
  const credentials = { issued: [] as string[], revoked: [] as string[] };
  const stand = startStandIn("healthy");
  const devices = new DeviceService({
    connection: new FakeConnection(true),
    proxies: parseProxyRegistry(JSON.stringify([{ proxyid: 7, base_url: stand.url, interval_ms: 60_000 }])),
    bufferSize: 10,
    summaryIntervalMs: 0,
  });
  await devices.start();
  const now = new Date();
  await store.recordHeartbeats([
    { serialNo: "VM-1", receivedAt: now, temperature: 4.5, currentPage: 3, payload: {} },
    {
      serialNo: "VM-2",
      receivedAt: new Date(now.getTime() - 3600_000),
      temperature: 8,
      currentPage: 1,
      payload: {},
    },
  ]);
  await store.recordTransactions([
    {
      transactionId: "T1",
      serialNo: "VM-1",
      slotNo: 2,
      quantity: 1,
      amount: 30,
      receivedAt: now,
      payload: {},
    },
  ]);
  await store.recordMachineLogs([
    { serialNo: "VM-2", receivedAt: now, code: "E42", level: "error", message: "coin jam", payload: {} },
  ]);
  await incoming.push("{broken");
  const [lease] = await incoming.lease(1, 0);
  await incoming.deadLetter(lease!, "Cannot parse the job");
  const consoleApp = consoleRoutes({
    apiToken: API_TOKEN,
    viewerToken: VIEWER_TOKEN,
    store,
    hub,
    presence,
    intake: {
      accept(r) {
        if (r.serialNo === "NOPE") return Promise.reject(new NotFoundError("No machine NOPE"));
        accepted.push(r);
        return Promise.resolve({
          created: true,
          command: {
            messageId: `MSG_${accepted.length}`,
            serialNo: r.serialNo,
            command: r.command,
            payload: r.payload,
            status: "queued",
            source: "api",
            detail: null,
            expiresAt: now,
            createdAt: now,
            sentAt: null,
            ackedAt: null,
            updatedAt: now,
          },
        });
      },
    },
    credentials: {
      issue(serialNo) {
        credentials.issued.push(serialNo);
        return Promise.resolve({ serialNo, token: "fresh-machine-token-xyz", issuedAt: now });
      },
      revoke(serialNo) {
        credentials.revoked.push(serialNo);
        return Promise.resolve();
      },
    },
    deadLetters: { incoming, outgoing },
    devices,
    status: () => Promise.resolve({ connected: true, roles: ["api"], queues: {}, counters: { received: 5 } }),
    receivedTotal: () => Promise.resolve(5),
    onlineWindowSeconds: 180,
    lowStock: 2,
    commandTtlSeconds: 300,
    ...extra,
  });
  return {
    app: consoleApp.app,
    consoleApp,
    hub,
    accepted,
    credentials,
    incoming,
    async close() {
      consoleApp.close();
      presence.close();
      hub.close();
      await devices.close();
      await stand.close();
      await incoming.close();
      await outgoing.close();
      qdb.close();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type H = Awaited<ReturnType<typeof harness>>;

async function signIn(h: H, token: string): Promise<{ cookie: string; csrf: string }> {
  const res = await h.app.request(`${ORIGIN}/console/sign-in`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
    body: new URLSearchParams({ token, next: "/console" }),
  });
  assert.equal(res.status, 303);
  const set = res.headers.get("set-cookie") ?? "";
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  assert.ok(!set.includes(token), "the cookie holds no token");
  const cookie = set.split(";")[0]!;
  const page = await (await h.app.request(`${ORIGIN}/console`, { headers: { cookie } })).text();
  const csrf = /name="csrf-token" content="([^"]+)"/.exec(page)![1]!;
  return { cookie, csrf };
}

function post(
  h: H,
  path: string,
  s: { cookie?: string; csrf?: string },
  form: Record<string, string> = {},
  extra: Record<string, string> = {},
) {
  const body = new URLSearchParams({ ...(s.csrf ? { _csrf: s.csrf } : {}), ...form });
  return h.app.request(`${ORIGIN}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: ORIGIN,
      ...(s.cookie ? { cookie: s.cookie } : {}),
      ...extra,
    },
    body,
  });
}

const GET_ROUTES = [
  "/console",
  "/console?filter=alerting&sort=alerts&dir=desc&q=vm",
  "/console?fragment=fleet-table",
  "/console/machines/VM-1",
  "/console/machines/VM-1?fragment=machine-live",
  "/console/alerts",
  "/console/alerts?fragment=alerts-list",
  "/console/dead-letters",
  "/console/dead-letters?queue=outgoing",
  "/console/devices",
  "/console/system",
  "/console/system?fragment=system-live",
];
const POST_ROUTES: [string, Record<string, string>][] = [
  ["/console/machines/VM-1/dispense", { slot_no: "2" }],
  ["/console/machines/VM-1/commands", { command: "reboot", payload: "{}" }],
  ["/console/machines/VM-1/slots", { slots: "1-2", stock: "5" }],
  ["/console/machines/VM-1/token", {}],
  ["/console/machines/VM-1/token/revoke", {}],
  ["/console/dead-letters/incoming/replay", { all: "1" }],
  ["/console/dead-letters/incoming/discard", { all: "1" }],
  ["/console/devices/7/start", {}],
];

Deno.test("console: without a session, pages redirect to sign-in and everything else is 401", async () => {
  const h = await harness();
  try {
    assert.equal((await h.app.request("/")).headers.get("location"), "/console");
    for (const path of GET_ROUTES.filter((p) => !p.includes("fragment"))) {
      const res = await h.app.request(`${ORIGIN}${path}`);
      assert.equal(res.status, 303, path);
      assert.match(res.headers.get("location")!, /^\/console\/sign-in\?next=/);
    }
    for (const path of GET_ROUTES.filter((p) => p.includes("fragment")).concat("/console/events")) {
      assert.equal((await h.app.request(`${ORIGIN}${path}`)).status, 401, path);
    }
    for (const [path, form] of POST_ROUTES) assert.equal((await post(h, path, {}, form)).status, 401, path);
    assert.equal(h.accepted.length, 0);
    const signInPage = await h.app.request(`${ORIGIN}/console/sign-in`);
    assert.equal(signInPage.status, 200);
    assert.match(await signInPage.text(), /name="token"/);
    for (const file of ["console.js", "console.css"]) {
      const asset = await h.app.request(`${ORIGIN}/console/assets/${file}`);
      assert.equal(asset.status, 200);
      const etag = asset.headers.get("etag")!;
      assert.ok((await asset.text()).length > 1000);
      const again = await h.app.request(`${ORIGIN}/console/assets/${file}`, {
        headers: { "if-none-match": etag },
      });
      assert.equal(again.status, 304);
    }
    assert.equal((await h.app.request(`${ORIGIN}/console/assets/x.js`)).status, 404);
  } finally {
    await h.close();
  }
});

Deno.test("console: a wrong token, a forged or expired cookie and a cross-origin sign-in sign nobody in", async () => {
  const h = await harness();
  try {
    const wrong = await post(h, "/console/sign-in", {}, { token: "not-the-token-at-all" });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("set-cookie"), null);
    const cross = await post(h, "/console/sign-in", {}, { token: API_TOKEN }, { origin: "http://evil.test" });
    assert.equal(cross.status, 403);
    const { cookie } = await signIn(h, API_TOKEN);
    const value = cookie.split("=")[1]!;
    const forged = `console_session=${value.replace(/^operator/, "viewer")}`;
    assert.equal((await h.app.request(`${ORIGIN}/console`, { headers: { cookie: forged } })).status, 303);
    const other = new ConsoleAuth({ apiToken: "another-api-token-0123456" }).issue("operator");
    assert.equal(
      (await h.app.request(`${ORIGIN}/console`, { headers: { cookie: `console_session=${other}` } })).status,
      303,
      "a cookie made with another API_TOKEN (a rotated one) is refused",
    );
    const expired = new ConsoleAuth({ apiToken: API_TOKEN, ttlMs: -1 }).issue("operator");
    assert.equal(
      (await h.app.request(`${ORIGIN}/console`, { headers: { cookie: `console_session=${expired}` } }))
        .status,
      303,
    );
  } finally {
    await h.close();
  }
});

Deno.test("console: a viewer sees every page and can change nothing", async () => {
  const h = await harness();
  try {
    const viewer = await signIn(h, VIEWER_TOKEN);
    for (const path of GET_ROUTES) {
      const res = await h.app.request(`${ORIGIN}${path}`, { headers: { cookie: viewer.cookie } });
      assert.equal(res.status, 200, path);
      const html = await res.text();
      if (!path.includes("fragment")) assert.match(html, /viewer \(read only\)/, path);
    }
    const machine =
      await (await h.app.request(`${ORIGIN}/console/machines/VM-1`, { headers: { cookie: viewer.cookie } }))
        .text();
    assert.match(machine, /<button type="submit" disabled>Dispense<\/button>/);
    assert.ok(!machine.includes('id="stock-form"'), "a viewer sees no set-stock form");
    for (const [path, form] of POST_ROUTES) {
      const res = await post(h, path, viewer, form);
      assert.equal(res.status, 403, path);
    }
    assert.equal(h.accepted.length, 0);
    assert.deepEqual(h.credentials, { issued: [], revoked: [] });
    assert.equal((await h.incoming.depth()).dead, 1);
    const out = await post(h, "/console/sign-out", viewer);
    assert.equal(out.status, 303);
    assert.match(out.headers.get("set-cookie")!, /console_session=;/);
  } finally {
    await h.close();
  }
});

Deno.test("console: an operator's pages show the fleet; POSTs need the CSRF token and the same origin", async () => {
  const h = await harness();
  try {
    const op = await signIn(h, API_TOKEN);
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await h.app.request(`${ORIGIN}${path}`, { headers: { cookie: op.cookie, ...headers } });
      assert.equal(res.status, 200, path);
      return await res.text();
    };
    const fleet = await get("/console");
    assert.match(fleet, /data-serial="VM-1"/);
    assert.match(fleet, /data-serial="VM-2"/);
    assert.match(fleet, /class="dot on"><\/span><a href="\/console\/machines\/VM-1"/);
    const alerting = await get("/console?filter=alerting");
    assert.ok(alerting.includes('data-serial="VM-2"') && !alerting.includes('data-serial="VM-1"'));
    assert.match(await get("/console?fragment=fleet-table"), /^<div id="fleet-table">/);
    const machine = await get("/console/machines/VM-1");
    assert.match(machine, /Remote dispense/);
    assert.match(machine, /<option[^>]*value="2"[^>]*>2 \(-1\)<\/option>/, "the slot picker lists its slots");
    assert.match(machine, /T1/);
    assert.equal(
      (await h.app.request(`${ORIGIN}/console/machines/NOPE`, { headers: { cookie: op.cookie } })).status,
      404,
    );
    const alerts = await get("/console/alerts");
    assert.match(alerts, /coin jam/);
    assert.match(alerts, /href="\/console\/machines\/VM-2"/, "the fleet's feed names the machine");
    assert.match(alerts, /<th>Serial<\/th>/);
    const vm2 = await get("/console/machines/VM-2");
    assert.match(vm2, /coin jam/, "a machine's page shows its error log");
    assert.doesNotMatch(vm2, /<th>Serial<\/th>/, "without the serial column");
    assert.doesNotMatch(vm2, /id="alerts-list"/, "and not as the live-refreshed fleet feed");
    assert.match(await get("/console/dead-letters"), /Cannot parse the job/);
    assert.match(await get("/console/devices"), /data-proxy="7"/);
    const system = await get("/console/system");
    assert.match(system, /<svg class="chart"/);
    assert.match(system, /Live events: this process only/, "no Redis relay in this status");

    // No CSRF token, or another origin: refused.
    assert.equal(
      (await post(h, "/console/machines/VM-1/dispense", { cookie: op.cookie }, { slot_no: "2" })).status,
      403,
    );
    assert.equal(
      (await post(h, "/console/machines/VM-1/dispense", op, { slot_no: "2" }, { origin: "http://evil.test" }))
        .status,
      403,
    );
    assert.equal(h.accepted.length, 0);

    const json = { accept: "application/json" };
    const dispensed = await post(h, "/console/machines/VM-1/dispense", op, { slot_no: "2" }, json);
    assert.equal(dispensed.status, 202);
    assert.equal((await dispensed.json()).message_id, "MSG_1");
    assert.equal(h.accepted[0]!.command, "dispense");
    assert.equal(h.accepted[0]!.payload.slot_no, 2);
    assert.match(String(h.accepted[0]!.payload.transaction_id), /^RD\d+/);
    const sent = await post(h, "/console/machines/VM-1/commands", op, {
      command: "set_price",
      payload: '{"slot_no":1,"price":35}',
    }, json);
    assert.equal(sent.status, 202);
    assert.deepEqual(h.accepted[1]!.payload, { slot_no: 1, price: 35 });
    assert.equal(
      (await post(h, "/console/machines/VM-1/commands", op, { command: "x", payload: "[1]" }, json)).status,
      422,
    );
    assert.equal(
      (await post(h, "/console/machines/VM-1/commands", op, { command: "bad name!" }, json)).status,
      422,
    );
    assert.equal((await post(h, "/console/machines/NOPE/dispense", op, { slot_no: "1" }, json)).status, 404);
    const noJs = await post(h, "/console/machines/VM-1/dispense", op, { slot_no: "2" });
    assert.equal(noJs.status, 303, "without the script: back to the machine page");

    const token = await post(h, "/console/machines/VM-1/token", op);
    assert.equal(token.status, 201);
    assert.match(await token.text(), /fresh-machine-token-xyz/);
    assert.equal(token.headers.get("cache-control"), "no-store");
    assert.equal((await post(h, "/console/machines/VM-1/token/revoke", op)).status, 200);
    assert.deepEqual(h.credentials, { issued: ["VM-1"], revoked: ["VM-1"] });

    const [dead] = await h.incoming.deadLetters();
    const replay = await post(h, "/console/dead-letters/incoming/replay", op, { id: dead!.id });
    assert.equal(replay.status, 303);
    assert.match(decodeURIComponent(replay.headers.get("location")!), /Replayed 1/);
    assert.deepEqual(await h.incoming.depth(), { ready: 1, processing: 0, delayed: 0, dead: 0 });
    assert.equal((await post(h, "/console/dead-letters/nope/replay", op, { all: "1" })).status, 404);
    const started = await post(h, "/console/devices/7/start", op, {}, json);
    assert.equal(started.status, 200);
    assert.equal((await post(h, "/console/devices/99/start", op, {}, json)).status, 404);
  } finally {
    await h.close();
  }
});

Deno.test("console: the event stream sends the hub's batches to a signed-in browser", async () => {
  const h = await harness();
  try {
    const op = await signIn(h, VIEWER_TOKEN);
    const res = await h.app.request(`${ORIGIN}/console/events`, { headers: { cookie: op.cookie } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
    };
    await readUntil("event: hello");
    assert.equal(h.consoleApp.streams, 1);
    h.hub.emit({ type: "heartbeat", serial: "VM-1", at: new Date().toISOString(), temperature: 3, page: 1 });
    await readUntil("VM-1");
    assert.match(text, /event: batch\ndata: \{"events":\[\{"type":"heartbeat","serial":"VM-1"/);
    h.consoleApp.close(); // ends the stream, as on shutdown
    await readUntil("never");
    await reader.cancel();
    assert.equal(h.consoleApp.streams, 0);
  } finally {
    await h.close();
  }
});

Deno.test("console: the language follows Accept-Language, and the language link's cookie wins", async () => {
  const h = await harness();
  try {
    const op = await signIn(h, API_TOKEN);
    const zh = await (await h.app.request(`${ORIGIN}/console`, {
      headers: { cookie: op.cookie, "accept-language": "zh-TW,zh;q=0.9,en;q=0.5" },
    })).text();
    assert.match(zh, /<html lang="zh-TW">/);
    assert.match(zh, /機台總覽/);
    const set = await h.app.request(`${ORIGIN}/console/lang/en?back=/console/alerts`);
    assert.equal(set.headers.get("location"), "/console/alerts");
    const langCookie = set.headers.get("set-cookie")!.split(";")[0]!;
    const en = await (await h.app.request(`${ORIGIN}/console`, {
      headers: { cookie: `${op.cookie}; ${langCookie}`, "accept-language": "zh-TW" },
    })).text();
    assert.match(en, /<html lang="en">/);
    assert.equal(
      (await h.app.request(`${ORIGIN}/console/lang/en?back=https://evil.test`)).headers.get("location"),
      "/console",
    );
    assert.equal(pickLang(undefined, "fr, zh-Hant;q=0.8"), "zh-TW");
    assert.equal(pickLang(undefined, "de"), "en");
    for (const [key, [en, zhText]] of Object.entries(MESSAGES)) assert.ok(en && zhText, key);
  } finally {
    await h.close();
  }
});

Deno.test("console: 5 wrong tokens from one address, then 429 unchecked until the refill; other addresses unaffected", async () => {
  let now = 0;
  const metrics = createMetrics();
  const h = await harness({ signInLimit: new SignInLimit({ now: () => now }), metrics });
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (r: LogRecord) => void records.push(r) },
    loggers: [
      { category: ["gateway", "console"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  try {
    const from = (address: string, token: string, lang = "en") =>
      h.app.request(`${ORIGIN}/console/sign-in`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          origin: ORIGIN,
          "accept-language": lang,
        },
        body: new URLSearchParams({ token, next: "/console/alerts" }),
      }, { remoteAddr: { transport: "tcp", hostname: address, port: 50000 } });
    const attacker = "192.0.2.66";
    const operator = "198.51.100.7";

    // Successes are never charged: ten of them leave all five attempts.
    for (let i = 0; i < 10; i++) assert.equal((await from(attacker, API_TOKEN)).status, 303);
    for (let i = 1; i <= 5; i++) {
      const wrong = await from(attacker, `wrong-token-number-${i}-xxxxxx`);
      assert.equal(wrong.status, 401, `wrong token ${i}`);
      await wrong.body?.cancel();
    }
    const limited = await from(attacker, API_TOKEN);
    assert.equal(limited.status, 429, "the right token is not even checked while limited");
    assert.equal(limited.headers.get("retry-after"), "10");
    assert.equal(limited.headers.get("set-cookie"), null);
    const page = await limited.text();
    assert.match(page, /id="too-many"[^>]*>Too many wrong tokens from your address: try again in 10 s\./);
    assert.match(page, /name="next" value="\/console\/alerts"/, "where to go after is kept");
    const zh = await from(attacker, API_TOKEN, "zh-TW");
    assert.equal(zh.status, 429);
    assert.match(await zh.text(), /請於 10 秒後再試/);

    // Another address signs in meanwhile, and its own wrong token is its own.
    const other = await from(operator, API_TOKEN);
    assert.equal(other.status, 303);
    assert.equal(other.headers.get("location"), "/console/alerts");
    assert.equal((await from(operator, "another-wrong-token-xxxxxxx")).status, 401);

    now = 6_000;
    const still = await from(attacker, API_TOKEN);
    assert.equal(still.status, 429);
    assert.equal(still.headers.get("retry-after"), "4");
    await still.body?.cancel();
    now = 10_000; // one attempt back
    const back = await from(attacker, API_TOKEN);
    assert.equal(back.status, 303, "after the refill the right token signs in");
    assert.match(back.headers.get("set-cookie")!, /^console_session=/);
    const { by } = await counterValues(metrics.consoleSignIns, "result");
    assert.deepEqual(by, { ok: 12, wrong: 6, limited: 3 });
    // The lockout is one warning naming the address, never a token.
    assert.equal(records.length, 1, JSON.stringify(records.map((r) => r.message)));
    assert.equal(records[0]!.level, "warning");
    assert.equal(records[0]!.properties.address, attacker);
    assert.equal(records[0]!.properties.seconds, 10);
    const line = JSON.stringify(records);
    assert.ok(!line.includes("wrong-token-number") && !line.includes(API_TOKEN), "no token logged");
  } finally {
    await reset();
    await h.close();
  }
});

Deno.test("console: an operator sets slot stock (CSRF required) and the machine page shows it; a viewer cannot", async () => {
  const h = await harness();
  try {
    const page = async (cookie: string) =>
      await (await h.app.request(`${ORIGIN}/console/machines/VM-1`, { headers: { cookie } })).text();
    const viewer = await signIn(h, VIEWER_TOKEN);
    const refused = await post(h, "/console/machines/VM-1/slots", viewer, { slots: "1-8", stock: "20" });
    assert.equal(refused.status, 403);
    await refused.body?.cancel();

    const op = await signIn(h, API_TOKEN);
    const before = await page(op.cookie);
    assert.match(before, /<form[^>]*action="\/console\/machines\/VM-1\/slots"[^>]*id="stock-form"/);
    assert.match(before, /name="slots"[^>]*value="2"/, "the machine's slots are filled in");
    assert.match(before, /<td class="num"><span class="badge low">-1<\/span><\/td>/, "sold before any stock");
    const noCsrf = await post(h, "/console/machines/VM-1/slots", { cookie: op.cookie }, {
      slots: "1-8",
      stock: "20",
    });
    assert.equal(noCsrf.status, 403);
    await noCsrf.body?.cancel();
    const json = { accept: "application/json" };
    for (const [slots, stock] of [["x", "20"], ["1-8", "-1"], ["1-8", ""], ["1,1", "3"], ["1-101", "3"]]) {
      const bad = await post(h, "/console/machines/VM-1/slots", op, { slots: slots!, stock: stock! }, json);
      assert.equal(bad.status, 422, `${slots} / ${stock}`);
      assert.match((await bad.json()).message, /at most 100/);
    }
    assert.match(await page(op.cookie), /badge low">-1</, "nothing refused was written");

    const set = await post(h, "/console/machines/VM-1/slots", op, { slots: "1-8", stock: "20" }, json);
    assert.equal(set.status, 200);
    const body = await set.json();
    assert.equal(body.message, "Stock set: 8 slots.");
    assert.deepEqual(body.slots, Array.from({ length: 8 }, (_, i) => ({ slot_no: i + 1, stock: 20 })));
    const noJs = await post(h, "/console/machines/VM-1/slots", op, { slots: "2", stock: "1" });
    assert.equal(noJs.status, 303, "without the script: back to the machine page");
    assert.equal(noJs.headers.get("location"), "/console/machines/VM-1");
    const after = await page(op.cookie);
    assert.match(after, /name="slots"[^>]*value="1-8"/);
    assert.ok(!after.includes('badge low">-1<'), "no negative stock left");
    assert.match(after, /<td>2<\/td><td class="num"><span class="badge low">1<\/span><\/td>/);
    assert.match(after, /<td>8<\/td><td class="num">20<\/td>/);
    const live = await (await h.app.request(`${ORIGIN}/console/machines/VM-1?fragment=machine-live`, {
      headers: { cookie: op.cookie },
    })).text();
    assert.match(
      live,
      /<td>8<\/td><td class="num">20<\/td>/,
      "the fragment the script re-fetches shows it too",
    );
    const fleet = await (await h.app.request(`${ORIGIN}/console?filter=low_stock`, {
      headers: { cookie: op.cookie },
    })).text();
    assert.match(fleet, /data-serial="VM-1"/, "slot 2 at 1 is low (CONSOLE_LOW_STOCK 2)");
    const unknown = await post(h, "/console/machines/NOPE/slots", op, { slots: "1", stock: "1" }, json);
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  } finally {
    await h.close();
  }
});

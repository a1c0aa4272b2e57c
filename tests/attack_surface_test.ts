/**
 * @module attack_surface_test
 * The gateway's HTTP server (Deno.serve on loopback, MariaDB + Redis behind it) probed as an
 * attacker would, bounded in count and time:
 * - 40 unauthenticated chunked requests trickling a byte every 300 ms, and 10 connections sending
 *   their headers as slowly, do not make an authenticated `GET /api/v1/machines` answer 503
 *   (HTTP_MAX_IN_FLIGHT is 8 here: before, the trickling requests held every slot);
 * - 30 authenticated requests whose client breaks off the body log one line, and no stack;
 * - the EMQX hooks under a flood: 300 logins with fresh passwords are answered at once, mostly
 *   `ignore` past the per-source limit, with few database reads; the same refused login is
 *   refused from memory; a body over 64 KB is 200 `deny`, not 413.
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Gateway } from "../app/gateway.ts";
import { startGateway, testEnv } from "./support.ts";

const encoder = new TextEncoder();

async function serve(overrides: Record<string, string>) {
  const t = await testEnv();
  const gateway = new Gateway(t.config({ GATEWAY_ROLES: "api", ...overrides }));
  await startGateway(gateway);
  const stop = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} },
    gateway.app.fetch,
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    gateway,
    base,
    port: server.addr.port,
    token: gateway.apiToken,
    async close() {
      stop.abort();
      await server.finished;
      await gateway.close();
      await t.cleanup();
    },
  };
}

/** A raw connection that writes `head` now and `drip` every `everyMs` until closed. */
async function trickler(port: number, head: string, drip: string, everyMs: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let open = true;
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    try {
      while (open && (await conn.read(buf)) !== null);
    } catch {
      // closed by either side
    }
  })();
  await conn.write(encoder.encode(head));
  const timer = setInterval(() => {
    conn.write(encoder.encode(drip)).catch(() => {});
  }, everyMs);
  return {
    async close() {
      open = false;
      clearInterval(timer);
      try {
        conn.close();
      } catch {
        // already closed by the server
      }
      await reading;
    },
  };
}

Deno.test("unauthenticated trickling bodies and slow headers do not lock the API out; broken bodies log one line", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (r: LogRecord) => void records.push(r) },
    loggers: [
      { category: ["gateway"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
    reset: true,
  });
  const s = await serve({ HTTP_MAX_IN_FLIGHT: "8", HTTP_BODY_TIMEOUT_MS: "2000" });
  const slow: { close(): Promise<void> }[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      slow.push(
        await trickler(
          s.port,
          "POST /api/v1/machines/M-1/commands HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n" +
            "Content-Type: application/json\r\n\r\n1\r\n{\r\n",
          "1\r\n \r\n",
          300,
        ),
      );
    }
    for (let i = 0; i < 10; i++) {
      slow.push(
        await trickler(s.port, "GET /api/v1/machines HTTP/1.1\r\nHost: gw\r\n", "X-Slow: 1\r\n", 300),
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${s.base}/api/v1/machines`, {
        headers: { authorization: `Bearer ${s.token}` },
      });
      const text = await res.text();
      assert.equal(res.status, 200, `authenticated request ${i}: ${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // Authenticated requests whose client goes away mid-body.
    records.length = 0;
    for (let i = 0; i < 30; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
      await conn.write(encoder.encode(
        `POST /api/v1/machines/M-1/commands HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${s.token}\r\n` +
          'Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n5\r\n{"com',
      ));
      await new Promise((r) => setTimeout(r, 20));
      conn.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    const http = records.filter((r) => r.category.join(".") === "gateway.http");
    assert.ok(http.length <= 1, `${http.length} log lines for 30 broken requests`);
    for (const r of records) {
      for (const value of Object.values(r.properties)) {
        assert.ok(!(value instanceof Error), `a logged error (with its stack): ${r.message.join("")}`);
      }
    }
  } finally {
    await Promise.all(slow.map((t) => t.close()));
    await s.close();
    await reset();
  }
});

Deno.test("EMQX hooks under a bounded flood: 200 in EMQX's format, a denial cache, few database reads", async () => {
  const s = await serve({ EMQX_HOOK_CHECKS_PER_SECOND: "10" });
  const hook = async (path: string, body: string) => {
    const res = await fetch(`${s.base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: res.status, body: await res.json() };
  };
  const checks = async () => {
    const res = await fetch(`${s.base}/metrics`, { headers: { authorization: `Bearer ${s.token}` } });
    const text = await res.text();
    const count = (answer: string) =>
      Number(
        new RegExp(`^gateway_emqx_hook_requests_total\\{hook="authn",answer="${answer}"\\} (\\d+)`, "m")
          .exec(text)?.[1] ?? 0,
      );
    return { deny: count("deny"), cached: count("deny_cached"), rate: count("ignore_rate") };
  };
  try {
    // 300 logins with fresh passwords, 50 at a time.
    const answers: { status: number; body: { result: string } }[] = [];
    for (let round = 0; round < 6; round++) {
      answers.push(
        ...await Promise.all(Array.from({ length: 50 }, (_, i) =>
          hook(
            "/emqx/authn",
            JSON.stringify({ clientid: "M-404", username: "M-404", password: `guess-${round}-${i}` }),
          ))),
      );
    }
    assert.ok(answers.every((a) => a.status === 200), "every answer is a 200");
    assert.ok(answers.every((a) => a.body.result === "deny" || a.body.result === "ignore"));
    const afterFlood = await checks();
    // 50 at once from one source, then 10 a second: far fewer reads than logins.
    assert.ok(afterFlood.deny <= 80, `${afterFlood.deny} logins were checked against the database`);
    assert.ok(afterFlood.rate >= 200, `${afterFlood.rate} answered ignore past the limit`);

    // The same refused login again and again is refused from memory (waiting for the bucket first).
    await new Promise((r) => setTimeout(r, 1100));
    const again = JSON.stringify({ clientid: "M-405", username: "M-405", password: "same-guess" });
    assert.equal((await hook("/emqx/authn", again)).body.result, "deny");
    const repeated = await Promise.all(Array.from({ length: 40 }, () => hook("/emqx/authn", again)));
    assert.ok(repeated.every((a) => a.status === 200 && a.body.result === "deny"));
    const afterRepeat = await checks();
    assert.equal(afterRepeat.cached - afterFlood.cached, 40, "refused from memory");
    assert.equal(afterRepeat.deny - afterFlood.deny, 1, "one database read");

    // A body over 64 KB: EMQX's deny, not the gateway's 413.
    const big = await hook(
      "/emqx/authn",
      JSON.stringify({ username: "M-1", password: "x".repeat(70 * 1024), clientid: "M-1" }),
    );
    assert.deepEqual(big, { status: 200, body: { result: "deny", is_superuser: false } });
    const bigAuthz = await hook(
      "/emqx/authz",
      JSON.stringify({ username: "M-1", topic: "y".repeat(70 * 1024) }),
    );
    assert.deepEqual(bigAuthz, { status: 200, body: { result: "deny", is_superuser: false } });
  } finally {
    await s.close();
  }
});

import assert from "node:assert/strict";
import { Hono } from "hono";
import { guardApi } from "./api_guard.ts";
import { onError } from "../error_handler.ts";

const TOKEN = "guard-test-token-0123456789";

function app(maxInFlight = 2, bodyTimeoutMs = 10_000) {
  const a = new Hono();
  a.onError(onError);
  guardApi(a, { apiToken: TOKEN, maxBodyBytes: 1024, maxInFlight, bodyTimeoutMs });
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  a.post("/api/v1/echo", async (c) => c.json(await c.req.json()));
  a.get("/api/v1/slow", async (c) => {
    await gate;
    return c.json({ ok: true });
  });
  a.get("/healthz", (c) => c.text("ok"));
  return { a, release };
}

const auth = { authorization: `Bearer ${TOKEN}` };

Deno.test("every /api/* route needs the bearer token; other routes do not", async () => {
  const { a } = app();
  const none = await a.request("/api/v1/echo", { method: "POST", body: "{}" });
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, "unauthorized");
  const wrong = await a.request("/api/v1/echo", {
    method: "POST",
    body: "{}",
    headers: { authorization: "Bearer x" },
  });
  assert.equal(wrong.status, 401);
  const ok = await a.request("/api/v1/echo", { method: "POST", body: '{"a":1}', headers: auth });
  assert.deepEqual(await ok.json(), { a: 1 });
  assert.equal((await a.request("/healthz")).status, 200);
});

Deno.test("bodies over the cap are 413 JSON", async () => {
  const { a } = app();
  const res = await a.request("/api/v1/echo", { method: "POST", body: "x".repeat(2000), headers: auth });
  assert.equal(res.status, 413);
  assert.equal((await res.json()).error.code, "payload_too_large");
});

Deno.test("requests beyond the in-flight cap are 503 at once, and served again once others finish", async () => {
  const { a, release } = app(2);
  const first = a.request("/api/v1/slow", { headers: auth });
  const second = a.request("/api/v1/slow", { headers: auth });
  await new Promise((r) => setTimeout(r, 10));
  const third = await a.request("/api/v1/slow", { headers: auth });
  assert.equal(third.status, 503);
  assert.equal(third.headers.get("retry-after"), "1");
  assert.equal((await third.json()).error.code, "unavailable");
  release();
  assert.deepEqual([(await first).status, (await second).status], [200, 200]);
  assert.equal((await a.request("/api/v1/slow", { headers: auth })).status, 200);
});

/** A request body that sends one chunk and then nothing more until `stop` (a slow client). */
function trickle(): { body: ReadableStream<Uint8Array>; pulled: () => number; stop: () => void } {
  let pulls = 0;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      c.enqueue(new TextEncoder().encode("{"));
    },
    pull() {
      pulls++;
    },
  });
  return {
    body,
    pulled: () => pulls,
    stop: () => {
      try {
        controller.close();
      } catch {
        // cancelled by the gateway already
      }
    },
  };
}

Deno.test("a request without the token costs no in-flight slot and no body read", async () => {
  const { a } = app(1);
  const slow = Array.from({ length: 20 }, () => trickle());
  const answers = await Promise.all(
    slow.map((t) =>
      a.request("/api/v1/echo", { method: "POST", body: t.body, duplex: "half" } as RequestInit)
    ),
  );
  assert.deepEqual(answers.map((r) => r.status), Array(20).fill(401));
  await Promise.all(answers.map((r) => r.body?.cancel()));
  // Nothing of their bodies was asked for beyond what the stream had queued at its start.
  assert.ok(slow.every((t) => t.pulled() <= 1), "the bodies were not read");
  const ok = await a.request("/api/v1/echo", { method: "POST", body: '{"a":2}', headers: auth });
  assert.deepEqual([ok.status, await ok.json()], [200, { a: 2 }]);
  slow.forEach((t) => t.stop());
});

Deno.test("a body that does not arrive within the deadline is 408, and frees its slot", async () => {
  const { a } = app(1, 100);
  const t = trickle();
  const res = await a.request("/api/v1/echo", {
    method: "POST",
    body: t.body,
    headers: auth,
    duplex: "half",
  } as RequestInit);
  assert.equal(res.status, 408);
  assert.equal((await res.json()).error.code, "request_timeout");
  const ok = await a.request("/api/v1/echo", { method: "POST", body: "{}", headers: auth });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  t.stop();
});

import assert from "node:assert/strict";
import { Hono } from "hono";
import { bearerAuth } from "./bearer_auth.ts";
import { onError } from "../error_handler.ts";

function app() {
  const a = new Hono();
  a.onError(onError);
  a.use("/api/*", bearerAuth("secret-token-0123456789"));
  a.get("/api/ping", (c) => c.json({ ok: true }));
  a.get("/healthz", (c) => c.json({ ok: true }));
  return a;
}

Deno.test("bearer auth: no token or a wrong one is 401 JSON, the right one passes", async () => {
  const a = app();
  for (
    const header of [undefined, "Bearer wrong", "Basic c2VjcmV0", "Bearer", "Bearer secret-token-012345678"]
  ) {
    const res = await a.request("/api/ping", { headers: header ? { authorization: header } : {} });
    assert.equal(res.status, 401, String(header));
    assert.equal(res.headers.get("content-type")?.startsWith("application/json"), true);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
    const body = await res.json();
    assert.equal(body.error.code, "unauthorized");
    assert.equal(typeof body.error.message, "string");
  }
  const ok = await a.request("/api/ping", { headers: { authorization: "Bearer secret-token-0123456789" } });
  assert.equal(ok.status, 200);
  const lower = await a.request("/api/ping", {
    headers: { authorization: "bearer secret-token-0123456789" },
  });
  assert.equal(lower.status, 200, "the scheme is case-insensitive");
  assert.equal((await a.request("/healthz")).status, 200, "only /api/* is protected");
});

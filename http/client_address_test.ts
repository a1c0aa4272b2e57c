import assert from "node:assert/strict";
import { Hono } from "hono";
import { clientAddress } from "./client_address.ts";

Deno.test("clientAddress: Deno.serve's remoteAddr, never X-Forwarded-For", async () => {
  const app = new Hono();
  app.get("/", (c) => c.text(clientAddress(c) ?? "none"));
  const spoofed = { headers: { "x-forwarded-for": "203.0.113.9" } };
  assert.equal(await (await app.request("/", spoofed)).text(), "none", "app.request: no connection info");
  const env = { remoteAddr: { transport: "tcp", hostname: "192.0.2.7", port: 40000 } };
  assert.equal(await (await app.request("/", spoofed, env)).text(), "192.0.2.7");
  assert.equal(
    await (await app.request("/", {}, { remoteAddr: { transport: "unix", path: "/s" } })).text(),
    "none",
  );

  // Through a real server: the peer is the loopback address, whatever the header says.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  try {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/`, spoofed);
    assert.equal(await res.text(), "127.0.0.1");
  } finally {
    await server.shutdown();
  }
});

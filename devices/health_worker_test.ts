import assert from "node:assert/strict";
import { runHealthWorker } from "./health_worker.ts";
import type { ProxyOutcome } from "./proxy_client.ts";
import { parseProxyRegistry } from "./proxy_registry.ts";
import { startStandIn } from "../tests/fakes/proxy_stand_in.ts";

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("a proxy that hangs does not hold back the others, and abort stops every loop", async () => {
  const fast = startStandIn("healthy");
  const hung = startStandIn("slow", { delayMs: 30_000 });
  const proxies = parseProxyRegistry(JSON.stringify([
    { proxyid: 1, base_url: fast.url, timeout_ms: 1000, interval_ms: 50 },
    { proxyid: 2, base_url: hung.url, timeout_ms: 1500, interval_ms: 50 },
  ]));
  const results: { proxyid: number; outcome: ProxyOutcome }[] = [];
  const stop = new AbortController();
  const worker = runHealthWorker({
    proxies,
    onResult: (proxy, outcome) => results.push({ proxyid: proxy.proxyid, outcome }),
    signal: stop.signal,
  });
  try {
    // While proxy 2's first check is still waiting for its answer, proxy 1 is checked again and again.
    await waitFor("three checks of proxy 1", () => results.filter((r) => r.proxyid === 1).length >= 3);
    assert.equal(results.filter((r) => r.proxyid === 2).length, 0);
    await waitFor("the timeout of proxy 2", () => results.some((r) => r.proxyid === 2));
    assert.deepEqual(results.find((r) => r.proxyid === 2)!.outcome, { kind: "timeout", timeoutMs: 1500 });
    assert.ok(results.filter((r) => r.proxyid === 1).every((r) => r.outcome.kind === "ok"));
  } finally {
    stop.abort();
    await worker;
    await Promise.all([fast.close(), hung.close()]);
  }
  const count = results.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(results.length, count, "no check after abort");
});

Deno.test("a throwing onResult is logged and the loop goes on", async () => {
  const fast = startStandIn("healthy");
  const stop = new AbortController();
  let calls = 0;
  const worker = runHealthWorker({
    proxies: parseProxyRegistry(JSON.stringify([{ proxyid: 1, base_url: fast.url, interval_ms: 50 }])),
    onResult: () => {
      calls++;
      throw new Error("bug in the caller");
    },
    signal: stop.signal,
  });
  try {
    await waitFor("two calls", () => calls >= 2);
  } finally {
    stop.abort();
    await worker;
    await fast.close();
  }
});

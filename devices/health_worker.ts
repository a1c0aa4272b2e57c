/**
 * @module health_worker
 * The seed's BackgroundWorker: one loop per proxy, all running at once, each checking its proxy's
 * health path every `interval_ms` (start to start) with a budget of `timeout_ms`, and handing every
 * outcome to `onResult`. A slow or dead proxy delays nobody else. Stops when `signal` aborts, with
 * any check in progress cut short and no outcome made for it.
 */
import { getLogger } from "@logtape/logtape";
import { sleep } from "../lib/sleep.ts";
import { callProxy, type ProxyOutcome } from "./proxy_client.ts";
import type { ProxyConfig } from "./proxy_registry.ts";

const log = getLogger(["gateway", "devices", "health"]);

export interface HealthWorkerOptions {
  proxies: readonly ProxyConfig[];
  onResult: (proxy: ProxyConfig, outcome: ProxyOutcome, at: Date) => void;
  signal: AbortSignal;
  /** For tests. */
  fetch?: typeof fetch;
  now?: () => Date;
}

/** Resolves once every loop has stopped (after `signal` aborts). */
export async function runHealthWorker(o: HealthWorkerOptions): Promise<void> {
  await Promise.all(o.proxies.map((proxy) => checkLoop(proxy, o)));
}

async function checkLoop(proxy: ProxyConfig, o: HealthWorkerOptions): Promise<void> {
  const url = `${proxy.base_url}${proxy.health_path}`;
  const now = o.now ?? (() => new Date());
  while (!o.signal.aborted) {
    const started = performance.now();
    let outcome: ProxyOutcome;
    try {
      outcome = await callProxy({
        url,
        method: "GET",
        timeoutMs: proxy.timeout_ms,
        signal: o.signal,
        fetch: o.fetch,
      });
    } catch (error) {
      if (o.signal.aborted) return;
      // callProxy turns every fault of the proxy into an outcome; anything else is ours: keep going.
      log.error("Health check of proxy {proxyid} failed: {error}", { proxyid: proxy.proxyid, error });
      await sleep(proxy.interval_ms, o.signal);
      continue;
    }
    try {
      o.onResult(proxy, outcome, now());
    } catch (error) {
      log.error("Handling the health of proxy {proxyid} failed: {error}", { proxyid: proxy.proxyid, error });
    }
    await sleep(Math.max(0, proxy.interval_ms - (performance.now() - started)), o.signal);
  }
}

/**
 * @module proxy_stand_in
 * For tests: a real HTTP proxy service on 127.0.0.1 (Deno.serve on a free port) that answers its
 * health path and controller start as told: `healthy` (200 JSON), `slow` (answers after `delayMs`,
 * past any sane timeout), `error500`; and {@link refusedUrl}, a base URL where nothing listens.
 * The mode can be changed while it runs; `close()` cuts slow answers short.
 */

export type StandInMode = "healthy" | "slow" | "error500";

export interface StandIn {
  readonly url: string;
  mode: StandInMode;
  readonly requests: { method: string; path: string; body: string }[];
  close(): Promise<void>;
}

export function startStandIn(mode: StandInMode, options: { delayMs?: number } = {}): StandIn {
  const stop = new AbortController();
  const requests: StandIn["requests"] = [];
  const state = { mode };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen() {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      requests.push({ method: req.method, path, body: await req.text() });
      if (state.mode === "slow") {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, options.delayMs ?? 10_000);
          stop.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve();
          }, { once: true });
        });
      }
      if (state.mode === "error500") return Response.json({ error: "controller crashed" }, { status: 500 });
      if (path === "/health") {
        return Response.json({
          status: "ok",
          controller_type: "E82",
          remark: "stand-in",
        });
      }
      if (path === "/controller/start" && req.method === "POST") {
        return Response.json({ start_status: "success", details: "Controller started successfully" });
      }
      return new Response("not found", { status: 404 });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: StandInMode) {
      state.mode = m;
    },
    requests,
    async close() {
      if (!stop.signal.aborted) stop.abort();
      await server.finished;
    },
  };
}

/** A base URL on 127.0.0.1 where nothing listens (a port just freed), so connecting is refused. */
export function refusedUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `http://127.0.0.1:${port}`;
}

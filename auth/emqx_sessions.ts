/**
 * @module emqx_sessions
 * Disconnects a machine's clients on EMQX 5 through its REST API, with an API key
 * (`EMQX_API_KEY` / `EMQX_API_SECRET`, HTTP basic auth): `GET /api/v5/clients?username={serial}`
 * finds its client ids (`{serial}` and `{serial}:…`), then `DELETE /api/v5/clients/{clientid}`
 * ends each session (204; 404 when it is already gone).
 */
import type { SessionCloser } from "./machine_sessions.ts";

export interface EmqxSessionsOptions {
  /** EMQX's dashboard / API listener, e.g. `http://emqx:18083` (the `/api/v5` prefix is added). */
  apiUrl: string;
  apiKey: string;
  apiSecret: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class EmqxSessions implements SessionCloser {
  readonly name = "EMQX";
  readonly #base: string;
  readonly #auth: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(o: EmqxSessionsOptions) {
    this.#base = `${o.apiUrl.replace(/\/+$/, "").replace(/\/api\/v5$/, "")}/api/v5`;
    this.#auth = `Basic ${btoa(`${o.apiKey}:${o.apiSecret}`)}`;
    this.#timeoutMs = o.timeoutMs ?? 5000;
    this.#fetch = o.fetch ?? fetch;
  }

  async closeSessions(serialNo: string): Promise<number> {
    const found = await this.#call("GET", `/clients?username=${encodeURIComponent(serialNo)}&_limit=100`);
    const listed = ((await found.json()) as { data?: { clientid?: unknown; username?: unknown }[] }).data ??
      [];
    const ids = new Set([serialNo]);
    for (const c of listed) {
      // Only the machine's own ids, whatever else a loose filter might return.
      if (
        typeof c.clientid === "string" && (c.clientid === serialNo || c.clientid.startsWith(`${serialNo}:`))
      ) {
        ids.add(c.clientid);
      }
    }
    let closed = 0;
    for (const id of ids) {
      const res = await this.#call("DELETE", `/clients/${encodeURIComponent(id)}`, [404]);
      await res.body?.cancel();
      if (res.status !== 404) closed++;
    }
    return closed;
  }

  async #call(method: string, path: string, alsoOk: number[] = []): Promise<Response> {
    let res: Response;
    try {
      res = await this.#fetch(`${this.#base}${path}`, {
        method,
        headers: { authorization: this.#auth, accept: "application/json" },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new Error(`${method} ${path.split("?")[0]} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!res.ok && !alsoOk.includes(res.status)) {
      await res.body?.cancel();
      throw new Error(`${method} ${path.split("?")[0]} answered HTTP ${res.status}`);
    }
    return res;
  }
}

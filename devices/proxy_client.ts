/**
 * @module proxy_client
 * One HTTP exchange with a proxy service, classified the way the device service reports it:
 * `ok` (2xx), `http_error` (any other status), `timeout` (no full answer within the budget) or
 * `connection_error` (refused, unreachable, reset). Never throws for the proxy's faults; a shutdown
 * (the caller's signal) is the one case that rejects, so no event is made for it.
 */

/** Bodies larger than this are not kept (a health answer is small; this bounds memory per proxy). */
const MAX_BODY_CHARS = 64 * 1024;

export type ProxyOutcome =
  | { kind: "ok"; httpStatus: number; responseTime: number; body: unknown }
  | { kind: "http_error"; httpStatus: number; statusText: string; responseTime: number; body: unknown }
  | { kind: "timeout"; timeoutMs: number }
  | { kind: "connection_error"; errorType: "connection_refused" | "connection_error"; error: string };

export interface ProxyRequest {
  url: string;
  method: "GET" | "POST";
  timeoutMs: number;
  /** Shutdown: aborting it rejects with the signal's reason instead of making an outcome. */
  signal?: AbortSignal;
  body?: unknown;
  fetch?: typeof fetch;
}

/** Seconds as in the seed's `"response_time": 0.1`, to a tenth of a millisecond. */
export function toSeconds(ms: number): number {
  return Math.round(ms * 10) / 10_000;
}

export async function callProxy(req: ProxyRequest): Promise<ProxyOutcome> {
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  const started = performance.now();
  try {
    const response = await (req.fetch ?? fetch)(req.url, {
      method: req.method,
      headers: req.body === undefined
        ? { accept: "application/json" }
        : { accept: "application/json", "content-type": "application/json" },
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      signal,
      redirect: "manual",
    });
    // The budget covers the body too: a proxy that sends headers and then stalls has timed out.
    const text = await response.text();
    const responseTime = toSeconds(performance.now() - started);
    const body = parseBody(text);
    if (response.status >= 200 && response.status < 300) {
      return { kind: "ok", httpStatus: response.status, responseTime, body };
    }
    return {
      kind: "http_error",
      httpStatus: response.status,
      statusText: response.statusText,
      responseTime,
      body,
    };
  } catch (error) {
    if (req.signal?.aborted) throw req.signal.reason ?? error;
    if (timeout.aborted) return { kind: "timeout", timeoutMs: req.timeoutMs };
    const message = describe(error);
    const refused = /refused/i.test(message) || hasCode(error, "ECONNREFUSED") ||
      error instanceof Deno.errors.ConnectionRefused;
    return {
      kind: "connection_error",
      errorType: refused ? "connection_refused" : "connection_error",
      error: message,
    };
  }
}

/** JSON when it is JSON, the text otherwise, null when empty or too large to keep. */
function parseBody(text: string): unknown {
  if (text.length === 0 || text.length > MAX_BODY_CHARS) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** fetch wraps the socket error: the useful words are in `cause`. */
function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const text = e instanceof Error ? e.message : String(e);
    if (!parts.some((p) => p.includes(text))) parts.push(text);
  }
  return parts.join(": ") || "unknown error";
}

function hasCode(error: unknown, code: string): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === code) return true;
  }
  return false;
}

/**
 * @module service_check
 * Waits for one service the gateway needs at start (MySQL, Redis, an external MQTT broker): tries
 * until it answers, retrying only while it cannot be reached, up to a deadline. A failure is one line
 * for a person: what, where (host:port, never a password), why, and what to check.
 */
import { sleep } from "../lib/sleep.ts";

export interface ServiceCheck {
  /** "MySQL", "Redis", "MQTT broker". */
  service: string;
  /** The variable that says where it is (`DATABASE_URL`, …). */
  variable: string;
  /** The URL it was given; only its protocol, host and port are shown. */
  url: string;
  /** Where its user and password are set, when not in the URL (`MQTT_USERNAME and MQTT_PASSWORD`). */
  credentials?: string;
  /** One try; resolves when the service is usable. */
  attempt: (signal: AbortSignal) => Promise<void>;
  /** Tries again after this error until the deadline (default: the connection failed). */
  retryable?: (error: unknown) => boolean;
  /** The reason to show when the last error says little (e.g. the connection's last error). */
  lastReason?: () => string | null;
}

/** Where a URL points, without credentials: `127.0.0.1:3306`. */
export function whereOf(url: string): string {
  try {
    const u = new URL(url);
    return u.host || url;
  } catch {
    return "(unparseable URL)";
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
};

/** The most telling reason in an error and its causes, on one line. */
export function reasonOf(error: unknown): string {
  const messages: string[] = [];
  let e: unknown = error;
  for (let depth = 0; e !== null && e !== undefined && depth < 8; depth++) {
    if (typeof e !== "object") {
      messages.push(String(e));
      break;
    }
    const { code, message, cause, errors } = e as {
      code?: unknown;
      message?: unknown;
      cause?: unknown;
      errors?: unknown;
    };
    if (typeof code === "string" && REASONS[code]) return REASONS[code]!;
    if (typeof message === "string" && message) messages.push(message);
    // Node's net puts one error per address tried (IPv4, IPv6) into an AggregateError.
    e = cause ?? (Array.isArray(errors) ? errors[0] : undefined);
  }
  // Drizzle wraps the driver's error in "Failed query: <the SQL>": the driver's says more.
  const first = messages.find((m) => !m.startsWith("Failed query")) ?? messages[0] ?? "failed";
  return first.split("\n")[0]!.trim();
}

/** What to check, by the reason. */
function hintOf(check: ServiceCheck, reason: string): string {
  const missing = /database (\S+) (?:does not exist|\(or it does not exist\))/.exec(reason);
  if (missing) {
    return `as an administrator, create it (CREATE DATABASE ${
      missing[1]
    }) and grant the user access to it, or name an existing one in ${check.variable}`;
  }
  if (/access denied|not authori[sz]ed|bad user ?name or password|WRONGPASS|NOAUTH/i.test(reason)) {
    return `check the user and password in ${check.credentials ?? check.variable}`;
  }
  return `check that ${check.service} is running there and that ${check.variable} names the right host and port`;
}

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
]);

/** True when `error` or one of its causes says the service could not be reached (yet). */
export function isUnreachable(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== null && typeof e === "object" && depth < 8; depth++) {
    const { code, cause, errors } = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string" && UNREACHABLE.has(code)) return true;
    e = cause ?? (Array.isArray(errors) ? errors[0] : undefined);
  }
  return false;
}

/** `promise`, or a rejection with the signal's reason when it aborts first. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Resolves once `attempt` succeeds; retries failures `retryable` accepts every 250 ms up to
 * `deadlineMs`; else rejects with an Error whose message is the one line to print.
 */
export async function waitForService(
  check: ServiceCheck,
  deadlineMs: number,
  signal: AbortSignal,
): Promise<void> {
  const retryable = check.retryable ?? isUnreachable;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const timeout = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    try {
      await check.attempt(AbortSignal.any([signal, timeout]));
      return;
    } catch (error) {
      if (signal.aborted) throw error;
      if (!timeout.aborted && retryable(error) && deadline - Date.now() > 250) {
        await sleep(250, signal);
        continue;
      }
      const last = timeout.aborted ? check.lastReason?.() : null;
      const reason = last
        ? reasonOf({ message: last, code: /\b(E[A-Z]{4,})\b/.exec(last)?.[1] })
        : timeout.aborted
        ? `no answer within ${Math.round(deadlineMs / 1000)} s`
        : reasonOf(error);
      throw new Error(
        `Cannot use ${check.service} at ${whereOf(check.url)} (${check.variable}): ${reason}; ${
          hintOf(check, reason)
        }.`,
        { cause: error },
      );
    }
  }
}

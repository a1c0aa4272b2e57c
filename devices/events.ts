/**
 * @module events
 * The device service's MQTT topics and payloads, exactly as seed 000 shows them: `message`,
 * `proxyid` (a number), `status`, `proxyServiceAlive` / `proxyServiceStart` (the strings "1" / "0"),
 * `response_time` (seconds, a number), `timeout_type`, `response_data`. Each proxy exchange becomes
 * one payload, built here and nowhere else, so the shapes are tested in one place.
 *
 * | outcome | message | status | extra fields |
 * |---|---|---|---|
 * | health 2xx | `OK` | `healthy` | `response_time` |
 * | health timeout | `timeout_NG` | `timeout` | `timeout_type: "health_check"` |
 * | health refused / unreachable | `connection_NG` | `connection_error` | `error_type` (`connection_refused` or `connection_error`), `error_message` |
 * | health non-2xx | `NG` | `unhealthy` | `http_status`, `response_time`, `error_message` |
 * | controller start 2xx | `OK` | `controller_started` | `response_data` |
 * | controller start timeout | `timeout_NG` | `timeout` | `timeout_type: "controller_start"` |
 * | controller start refused | `connection_NG` | `connection_error` | as for health |
 * | controller start non-2xx | `NG` | `controller_start_failed` | `http_status`, `error_message`, `response_data` |
 *
 * Every success has `proxyServiceAlive: "1", proxyServiceStart: "1"`; every failure has "0" and "0".
 */
import type { ProxyOutcome } from "./proxy_client.ts";

export const DEVICE_TOPICS = {
  /** One per configured proxy when the device service starts. */
  start: "mcs/events/deviceService/start",
  /** The fleet summary. */
  fleet: "mcs/events/ProxyService/status",
  proxyStatus: (proxyid: number) => `mcs/events/ProxyService/status/${proxyid}`,
  deviceStatus: (proxyid: number) => `mcs/events/DeviceService/status/${proxyid}`,
  /** What the device service subscribes to (seed 000's 訂閱主題). */
  subscriptions: [
    "mcs/events/ProxyService/status/+",
    "mcs/events/DeviceService/status/+",
    "mcs/events/deviceService/+",
  ],
} as const;

export type Flag = "0" | "1";

/** What is published on `mcs/events/ProxyService/status/{proxyid}`. */
export interface ProxyStatusEvent {
  message: string;
  proxyid: number;
  status: string;
  proxyServiceAlive: Flag;
  proxyServiceStart: Flag;
  [field: string]: unknown;
}

const OK = { proxyServiceAlive: "1", proxyServiceStart: "1" } as const;
const DOWN = { proxyServiceAlive: "0", proxyServiceStart: "0" } as const;

function failure(
  proxyid: number,
  outcome: Exclude<ProxyOutcome, { kind: "ok" | "http_error" }>,
  what: string,
) {
  if (outcome.kind === "timeout") {
    return { message: "timeout_NG", proxyid, status: "timeout", ...DOWN, timeout_type: what };
  }
  return {
    message: "connection_NG",
    proxyid,
    status: "connection_error",
    ...DOWN,
    error_type: outcome.errorType,
    error_message: outcome.error,
  };
}

function httpError(status: number, statusText: string): string {
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
}

/** The result of one health check, for `mcs/events/ProxyService/status/{proxyid}`. */
export function healthEvent(proxyid: number, outcome: ProxyOutcome): ProxyStatusEvent {
  switch (outcome.kind) {
    case "ok":
      return { message: "OK", proxyid, status: "healthy", ...OK, response_time: outcome.responseTime };
    case "http_error":
      return {
        message: "NG",
        proxyid,
        status: "unhealthy",
        ...DOWN,
        http_status: outcome.httpStatus,
        response_time: outcome.responseTime,
        error_message: httpError(outcome.httpStatus, outcome.statusText),
      };
    default:
      return failure(proxyid, outcome, "health_check");
  }
}

/**
 * The device's side of the same check, for `mcs/events/DeviceService/status/{proxyid}`: `active`
 * with what the proxy said about its device (`device_info`, its health answer when that is a JSON
 * object), or `inactive` with the proxy event's message and status as `reason`.
 */
export function deviceStatusEvent(proxyid: number, outcome: ProxyOutcome): ProxyStatusEvent {
  if (outcome.kind === "ok") {
    const body = outcome.body;
    const deviceInfo = body !== null && typeof body === "object" && !Array.isArray(body)
      ? body
      : body === null
      ? {}
      : { response: body };
    return {
      message: "OK",
      proxyid,
      status: "active",
      ...OK,
      response_time: outcome.responseTime,
      device_info: deviceInfo,
    };
  }
  const proxy = healthEvent(proxyid, outcome);
  return { message: proxy.message, proxyid, status: "inactive", ...DOWN, reason: proxy.status };
}

/** The result of `POST /api/v1/proxies/{proxyid}/controller/start`, on the proxy's status topic. */
export function controllerEvent(proxyid: number, outcome: ProxyOutcome): ProxyStatusEvent {
  switch (outcome.kind) {
    case "ok":
      return { message: "OK", proxyid, status: "controller_started", ...OK, response_data: outcome.body };
    case "http_error":
      return {
        message: "NG",
        proxyid,
        status: "controller_start_failed",
        ...DOWN,
        http_status: outcome.httpStatus,
        error_message: httpError(outcome.httpStatus, outcome.statusText),
        response_data: outcome.body,
      };
    default:
      return failure(proxyid, outcome, "controller_start");
  }
}

/** `mcs/events/deviceService/start`, once per configured proxy. */
export function startEvent(proxyid: number, at: Date) {
  return { message: "OK", proxyid, status: "start", timestamp: at.toISOString() };
}

/**
 * The fleet on `mcs/events/ProxyService/status`: `status` is `healthy` (all healthy), `degraded`
 * (some), `unhealthy` (none of those checked) or `unknown` (none checked yet); `message` is `OK`
 * only when all are healthy; `proxies` holds each proxy's last health event, or
 * `{proxyid, status: "unknown"}` before its first check.
 */
export function fleetEvent(last: readonly { proxyid: number; event: ProxyStatusEvent | null }[], at: Date) {
  const checked = last.filter((p) => p.event !== null);
  const healthy = checked.filter((p) => p.event!.status === "healthy").length;
  const status = checked.length === 0
    ? "unknown"
    : healthy === last.length
    ? "healthy"
    : healthy > 0
    ? "degraded"
    : "unhealthy";
  return {
    message: healthy === last.length ? "OK" : "NG",
    status,
    total: last.length,
    healthy,
    unhealthy: checked.length - healthy,
    unknown: last.length - checked.length,
    proxies: last.map((p) => p.event ?? { proxyid: p.proxyid, status: "unknown" }),
    timestamp: at.toISOString(),
  };
}

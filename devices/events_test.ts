import assert from "node:assert/strict";
import {
  controllerEvent,
  DEVICE_TOPICS,
  deviceStatusEvent,
  fleetEvent,
  healthEvent,
  type ProxyStatusEvent,
  startEvent,
} from "./events.ts";
import type { ProxyOutcome } from "./proxy_client.ts";

const ok: ProxyOutcome = {
  kind: "ok",
  httpStatus: 200,
  responseTime: 0.1,
  body: { status: "ok", port: 5555 },
};
const timeout: ProxyOutcome = { kind: "timeout", timeoutMs: 200 };
const refused: ProxyOutcome = {
  kind: "connection_error",
  errorType: "connection_refused",
  error: "Connection refused (os error 111)",
};
const http500: ProxyOutcome = {
  kind: "http_error",
  httpStatus: 500,
  statusText: "Internal Server Error",
  responseTime: 0.0042,
  body: "boom",
};

Deno.test("topics are the seed's", () => {
  assert.equal(DEVICE_TOPICS.start, "mcs/events/deviceService/start");
  assert.equal(DEVICE_TOPICS.fleet, "mcs/events/ProxyService/status");
  assert.equal(DEVICE_TOPICS.proxyStatus(1), "mcs/events/ProxyService/status/1");
  assert.equal(DEVICE_TOPICS.deviceStatus(1), "mcs/events/DeviceService/status/1");
  assert.deepEqual(DEVICE_TOPICS.subscriptions, [
    "mcs/events/ProxyService/status/+",
    "mcs/events/DeviceService/status/+",
    "mcs/events/deviceService/+",
  ]);
});

Deno.test("a healthy check is the seed's health example, byte for byte", () => {
  assert.equal(
    JSON.stringify(healthEvent(1, ok)),
    '{"message":"OK","proxyid":1,"status":"healthy","proxyServiceAlive":"1","proxyServiceStart":"1","response_time":0.1}',
  );
});

Deno.test("a timed-out check is the seed's error example, byte for byte", () => {
  assert.equal(
    JSON.stringify(healthEvent(1, timeout)),
    '{"message":"timeout_NG","proxyid":1,"status":"timeout","proxyServiceAlive":"0","proxyServiceStart":"0","timeout_type":"health_check"}',
  );
});

Deno.test("refused and HTTP 500 checks have their own documented shapes", () => {
  assert.deepEqual(healthEvent(7, refused), {
    message: "connection_NG",
    proxyid: 7,
    status: "connection_error",
    proxyServiceAlive: "0",
    proxyServiceStart: "0",
    error_type: "connection_refused",
    error_message: "Connection refused (os error 111)",
  });
  assert.deepEqual(healthEvent(7, http500), {
    message: "NG",
    proxyid: 7,
    status: "unhealthy",
    proxyServiceAlive: "0",
    proxyServiceStart: "0",
    http_status: 500,
    response_time: 0.0042,
    error_message: "HTTP 500 Internal Server Error",
  });
});

Deno.test("device status: active with the proxy's answer, inactive with the reason", () => {
  assert.deepEqual(deviceStatusEvent(3, ok), {
    message: "OK",
    proxyid: 3,
    status: "active",
    proxyServiceAlive: "1",
    proxyServiceStart: "1",
    response_time: 0.1,
    device_info: { status: "ok", port: 5555 },
  });
  assert.deepEqual(deviceStatusEvent(3, { ...ok, body: "plain" } as ProxyOutcome).device_info, {
    response: "plain",
  });
  assert.deepEqual(deviceStatusEvent(3, { ...ok, body: null } as ProxyOutcome).device_info, {});
  assert.deepEqual(deviceStatusEvent(3, timeout), {
    message: "timeout_NG",
    proxyid: 3,
    status: "inactive",
    proxyServiceAlive: "0",
    proxyServiceStart: "0",
    reason: "timeout",
  });
  assert.equal(deviceStatusEvent(3, refused).reason, "connection_error");
  assert.equal(deviceStatusEvent(3, http500).reason, "unhealthy");
});

Deno.test("controller start: the seed's example on success, documented shapes on failure", () => {
  const data = { started: true, pid: 42 };
  assert.equal(
    JSON.stringify(controllerEvent(1, { ...ok, body: data } as ProxyOutcome)),
    '{"message":"OK","proxyid":1,"status":"controller_started","proxyServiceAlive":"1","proxyServiceStart":"1","response_data":{"started":true,"pid":42}}',
  );
  assert.deepEqual(controllerEvent(1, timeout), {
    message: "timeout_NG",
    proxyid: 1,
    status: "timeout",
    proxyServiceAlive: "0",
    proxyServiceStart: "0",
    timeout_type: "controller_start",
  });
  assert.deepEqual(controllerEvent(1, http500), {
    message: "NG",
    proxyid: 1,
    status: "controller_start_failed",
    proxyServiceAlive: "0",
    proxyServiceStart: "0",
    http_status: 500,
    error_message: "HTTP 500 Internal Server Error",
    response_data: "boom",
  });
  assert.equal(controllerEvent(1, refused).status, "connection_error");
});

Deno.test("start event and fleet summary", () => {
  const at = new Date("2026-04-14T01:00:00.000Z");
  assert.deepEqual(startEvent(9, at), {
    message: "OK",
    proxyid: 9,
    status: "start",
    timestamp: "2026-04-14T01:00:00.000Z",
  });
  const healthy = healthEvent(1, ok);
  const down = healthEvent(2, timeout);
  const fleet = (entries: { proxyid: number; event: ProxyStatusEvent | null }[]) => fleetEvent(entries, at);
  assert.deepEqual(fleet([{ proxyid: 1, event: healthy }, { proxyid: 2, event: down }]), {
    message: "NG",
    status: "degraded",
    total: 2,
    healthy: 1,
    unhealthy: 1,
    unknown: 0,
    proxies: [healthy, down],
    timestamp: "2026-04-14T01:00:00.000Z",
  });
  const allOk = fleet([{ proxyid: 1, event: healthy }]);
  assert.equal(allOk.message, "OK");
  assert.equal(allOk.status, "healthy");
  assert.equal(fleet([{ proxyid: 2, event: down }, { proxyid: 3, event: null }]).status, "unhealthy");
  const none = fleet([{ proxyid: 3, event: null }]);
  assert.equal(none.status, "unknown");
  assert.deepEqual(none.proxies, [{ proxyid: 3, status: "unknown" }]);
});

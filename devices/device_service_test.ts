import assert from "node:assert/strict";
import { NotFoundError } from "../lib/errors.ts";
import { createMetrics } from "../lib/metrics.ts";
import { DeviceService } from "./device_service.ts";
import { DEVICE_TOPICS } from "./events.ts";
import { FakeConnection } from "../tests/fakes/fake_connection.ts";
import { parseProxyRegistry } from "./proxy_registry.ts";
import { refusedUrl, type StandIn, startStandIn } from "../tests/fakes/proxy_stand_in.ts";

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Fleet {
  service: DeviceService;
  connection: FakeConnection;
  healthy: StandIn;
  slow: StandIn;
  broken: StandIn;
  close: () => Promise<void>;
}

function fleet(
  options: { connected?: boolean; bufferSize?: number; summaryIntervalMs?: number } = {},
): Fleet {
  const healthy = startStandIn("healthy");
  const slow = startStandIn("slow");
  const broken = startStandIn("error500");
  const proxies = parseProxyRegistry(JSON.stringify([
    { proxyid: 1, base_url: healthy.url, timeout_ms: 1000, interval_ms: 100 },
    { proxyid: 2, base_url: slow.url, timeout_ms: 150, interval_ms: 100 },
    { proxyid: 3, base_url: refusedUrl(), timeout_ms: 1000, interval_ms: 100 },
    { proxyid: 4, base_url: broken.url, timeout_ms: 1000, interval_ms: 100 },
  ]));
  const connection = new FakeConnection(options.connected ?? true);
  const service = new DeviceService({
    connection,
    proxies,
    bufferSize: options.bufferSize ?? 1000,
    summaryIntervalMs: options.summaryIntervalMs ?? 0,
    metrics: createMetrics(),
  });
  return {
    service,
    connection,
    healthy,
    slow,
    broken,
    async close() {
      await service.close();
      await Promise.all([healthy.close(), slow.close(), broken.close()]);
    },
  };
}

Deno.test("each check becomes one proxy event and one device event; a summary once all answered", async () => {
  const f = fleet();
  try {
    await f.service.start();
    assert.deepEqual(f.connection.subscriptions, DEVICE_TOPICS.subscriptions);
    const starts = f.connection.payloads(DEVICE_TOPICS.start);
    assert.deepEqual(starts.map((s) => [s.message, s.proxyid, s.status]), [
      ["OK", 1, "start"],
      ["OK", 2, "start"],
      ["OK", 3, "start"],
      ["OK", 4, "start"],
    ]);
    await waitFor(
      "two checks of every proxy",
      () => [1, 2, 3, 4].every((id) => f.connection.payloads(DEVICE_TOPICS.proxyStatus(id)).length >= 2),
    );

    const [ok] = f.connection.payloads(DEVICE_TOPICS.proxyStatus(1));
    assert.deepEqual(Object.keys(ok!), [
      "message",
      "proxyid",
      "status",
      "proxyServiceAlive",
      "proxyServiceStart",
      "response_time",
    ]);
    assert.equal(ok!.status, "healthy");
    assert.equal(typeof ok!.response_time, "number");
    assert.deepEqual(f.connection.payloads(DEVICE_TOPICS.proxyStatus(2))[0], {
      message: "timeout_NG",
      proxyid: 2,
      status: "timeout",
      proxyServiceAlive: "0",
      proxyServiceStart: "0",
      timeout_type: "health_check",
    });
    const refused = f.connection.payloads(DEVICE_TOPICS.proxyStatus(3))[0]!;
    assert.equal(refused.message, "connection_NG");
    assert.equal(refused.error_type, "connection_refused");
    const failing = f.connection.payloads(DEVICE_TOPICS.proxyStatus(4))[0]!;
    assert.equal(failing.status, "unhealthy");
    assert.equal(failing.http_status, 500);

    // One device event per proxy event, in step.
    for (const id of [1, 2, 3, 4]) {
      const device = f.connection.payloads(DEVICE_TOPICS.deviceStatus(id));
      assert.ok(Math.abs(device.length - f.connection.payloads(DEVICE_TOPICS.proxyStatus(id)).length) <= 1);
      assert.equal(device[0]!.status, id === 1 ? "active" : "inactive");
    }
    assert.deepEqual(
      f.connection.payloads(DEVICE_TOPICS.deviceStatus(1))[0]!.device_info,
      { status: "ok", controller_type: "E82", remark: "stand-in" },
    );

    // Statuses do not change, so exactly one summary: made when the last proxy first answered.
    const summaries = f.connection.payloads(DEVICE_TOPICS.fleet);
    assert.equal(summaries.length, 1);
    assert.equal(summaries[0]!.status, "degraded");
    assert.equal(summaries[0]!.healthy, 1);
    assert.equal(summaries[0]!.unhealthy, 3);

    const listed = f.service.proxies();
    assert.equal(listed.length, 4);
    assert.equal(listed[0]!.last?.status, "healthy");
    assert.ok(listed[0]!.history.checks >= 2);
    assert.equal(listed[0]!.history.consecutive_failures, 0);
    assert.ok(listed[1]!.history.consecutive_failures >= 2);
    assert.ok((listed[1]!.history.by_status.timeout ?? 0) >= 2);
    assert.equal(typeof listed[0]!.history.avg_response_time, "number");
    assert.deepEqual(f.service.status().proxies.map((p) => p.status), [
      "healthy",
      "timeout",
      "connection_error",
      "unhealthy",
    ]);
  } finally {
    await f.close();
  }
  const count = f.connection.published.length;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(f.connection.published.length, count, "nothing is published after close");
  assert.equal(f.connection.listenerCount, 0);
});

Deno.test("a status change publishes a new summary", async () => {
  const f = fleet();
  try {
    await f.service.start();
    await waitFor("the first summary", () => f.connection.payloads(DEVICE_TOPICS.fleet).length === 1);
    f.healthy.mode = "error500";
    await waitFor("the second summary", () => f.connection.payloads(DEVICE_TOPICS.fleet).length === 2);
    const summary = f.connection.payloads(DEVICE_TOPICS.fleet)[1]!;
    assert.equal(summary.status, "unhealthy");
    assert.equal(summary.message, "NG");
    assert.equal((summary.proxies as { status: string }[])[0]!.status, "unhealthy");
  } finally {
    await f.close();
  }
});

Deno.test("the periodic summary is sent even without a change", async () => {
  const f = fleet({ summaryIntervalMs: 60 });
  try {
    await f.service.start();
    await waitFor("three summaries", () => f.connection.payloads(DEVICE_TOPICS.fleet).length >= 3);
  } finally {
    await f.close();
  }
});

Deno.test("controller start publishes its result or the error event", async () => {
  const f = fleet();
  try {
    await f.service.start();
    const ok = await f.service.startController(1, { mode: "auto" });
    assert.equal(ok.published, "sent");
    assert.deepEqual(ok.event, {
      message: "OK",
      proxyid: 1,
      status: "controller_started",
      proxyServiceAlive: "1",
      proxyServiceStart: "1",
      response_data: { start_status: "success", details: "Controller started successfully" },
    });
    assert.deepEqual(f.healthy.requests.find((r) => r.path === "/controller/start"), {
      method: "POST",
      path: "/controller/start",
      body: '{"mode":"auto"}',
    });
    assert.ok(
      f.connection.payloads(DEVICE_TOPICS.proxyStatus(1)).some((p) => p.status === "controller_started"),
    );
    assert.equal((await f.service.startController(2)).event.timeout_type, "controller_start");
    assert.equal((await f.service.startController(3)).event.status, "connection_error");
    const failed = await f.service.startController(4);
    assert.equal(failed.event.status, "controller_start_failed");
    assert.deepEqual(failed.event.response_data, { error: "controller crashed" });
    assert.equal(f.service.proxy(1).controller?.event.status, "controller_started");
    await assert.rejects(f.service.startController(99), NotFoundError);
  } finally {
    await f.close();
  }
});

Deno.test("events made while disconnected are kept and sent in order on reconnect", async () => {
  const f = fleet({ connected: false, bufferSize: 1000 });
  try {
    await f.service.start();
    await waitFor("buffered checks", () => f.service.publisher.buffered >= 12);
    assert.equal(f.connection.published.length, 0);
    f.connection.restore();
    const topics = f.connection.published.map((p) => p.topic);
    assert.deepEqual(topics.slice(0, 4), Array(4).fill(DEVICE_TOPICS.start));
    // A proxy event is followed by its device event.
    const first = topics.indexOf(DEVICE_TOPICS.proxyStatus(1));
    assert.equal(topics[first + 1], DEVICE_TOPICS.deviceStatus(1));
    assert.equal(f.service.publisher.buffered, 0);
  } finally {
    await f.close();
  }
});

Deno.test("handlers get incoming messages; a new filter is subscribed unless already covered", async () => {
  const f = fleet();
  try {
    const seen: string[] = [];
    f.service.handlers.register(
      "mcs/events/ProxyService/status/+",
      (topic) => void seen.push(`status ${topic}`),
    );
    await f.service.start();
    f.service.handlers.register(
      "custom/topic",
      (topic, payload) => void seen.push(`custom ${topic} ${payload}`),
    );
    f.service.handlers.register("custom/#", () => {
      throw new Error("handler bug");
    });
    f.service.handlers.register("mcs/events/deviceService/start", () => void seen.push("start"));
    assert.deepEqual(f.connection.subscriptions, [
      ...DEVICE_TOPICS.subscriptions,
      "custom/topic",
      "custom/#",
    ]);
    f.connection.deliver("custom/topic", "hello");
    f.connection.deliver("mcs/events/ProxyService/status/7", "{}");
    f.connection.deliver("mcs/events/deviceService/start", "{}");
    f.connection.deliver("machine/M-1/heartbeat", "{}");
    assert.deepEqual(seen, ["custom custom/topic hello", "status mcs/events/ProxyService/status/7", "start"]);
    assert.equal(f.service.status().handlers.failures, 1);
  } finally {
    await f.close();
  }
});

/**
 * End to end for the device service (seed 000): a gateway running only the `devices` role (no
 * Redis, no SQL) checks real HTTP proxy stand-ins on loopback (healthy, slow past its timeout,
 * refusing connections, answering 500) and publishes through a real broker, where a subscriber
 * checks every field of every event against the seed's examples. The restart test runs a private
 * mosquitto on a free port, stops it mid-run and starts it again.
 */
import assert from "node:assert/strict";
import mqtt, { type MqttClient } from "mqtt";
import { loadConfig } from "../config.ts";
import { refusedUrl, startStandIn } from "./fakes/proxy_stand_in.ts";
import { Gateway } from "../app/gateway.ts";
import { SERVICES } from "./support.ts";

const SHARED_BROKER = SERVICES.mqtt;
const SEED_FIELDS = ["message", "proxyid", "status", "proxyServiceAlive", "proxyServiceStart"];

type Json = Record<string, unknown>;

async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function randomSuffix(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** A subscriber that records every JSON message on `mcs/events/#`. */
class Observer {
  readonly messages: { topic: string; raw: string; json: Json }[] = [];
  constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload) => {
      const raw = new TextDecoder().decode(payload);
      try {
        this.messages.push({ topic, raw, json: JSON.parse(raw) });
      } catch {
        // Not ours (the shared broker carries others' traffic).
      }
    });
  }

  static async connect(url: string, options: mqtt.IClientOptions = {}): Promise<Observer> {
    const client = await mqtt.connectAsync(url, {
      clientId: `devices-observer-${randomSuffix()}`,
      protocolVersion: 5,
      reconnectPeriod: 100,
      ...options,
    });
    const observer = new Observer(client);
    await client.subscribeAsync("mcs/events/#", { qos: 1 });
    return observer;
  }

  on(topic: string): Json[] {
    return this.messages.filter((m) => m.topic === topic).map((m) => m.json);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

function assertKeys(event: Json, extra: string[], what: string): void {
  assert.deepEqual(Object.keys(event), [...SEED_FIELDS, ...extra], `fields of ${what}`);
}

Deno.test("devices role alone: every proxy exchange becomes the seed's MQTT event; HTTP API and status", async () => {
  const base = 1_000_000_000 + Math.floor(Math.random() * 1_000_000_000);
  const [idOk, idSlow, idRefused, idBroken] = [base, base + 1, base + 2, base + 3];
  const healthy = startStandIn("healthy");
  const slow = startStandIn("slow");
  const broken = startStandIn("error500");
  const observer = await Observer.connect(SHARED_BROKER, { clean: true });
  const config = loadConfig({
    GATEWAY_ROLES: "devices",
    MQTT_URL: SHARED_BROKER,
    MQTT_CLIENT_ID: `devices-e2e-${randomSuffix()}`,
    // No session left behind on the shared broker.
    MQTT_SESSION_EXPIRY: "0",
    DEVICE_SUMMARY_INTERVAL_MS: "0",
    DEVICE_PROXIES: JSON.stringify([
      { proxyid: idOk, base_url: healthy.url, timeout_ms: 2000, interval_ms: 200, name: "tsc11" },
      { proxyid: idSlow, base_url: slow.url, timeout_ms: 300, interval_ms: 200 },
      { proxyid: idRefused, base_url: refusedUrl(), timeout_ms: 2000, interval_ms: 200 },
      { proxyid: idBroken, base_url: broken.url, timeout_ms: 2000, interval_ms: 200 },
    ]),
  });
  const gateway = new Gateway(config);
  try {
    const fromGateway: string[] = [];
    await gateway.start();
    assert.equal(gateway.store, undefined, "no database opened");
    assert.ok(gateway.devices, "device service started");
    gateway.devices.handlers.register("mcs/events/ProxyService/status/+", (topic) => {
      if (topic.endsWith(`/${idOk}`)) fromGateway.push(topic);
    });
    const customTopic = `devices-e2e-${randomSuffix()}/custom/topic`;
    const custom: string[] = [];
    gateway.devices.handlers.register(customTopic, () => {
      throw new Error("a broken handler must not stop the others");
    });
    gateway.devices.handlers.register(customTopic, (_topic, payload) => void custom.push(payload));

    const proxyTopic = (id: number) => `mcs/events/ProxyService/status/${id}`;
    const deviceTopic = (id: number) => `mcs/events/DeviceService/status/${id}`;
    await waitFor(
      "two checks of every proxy",
      () =>
        [idOk, idSlow, idRefused, idBroken].every((id) =>
          observer.on(proxyTopic(id)).length >= 2 && observer.on(deviceTopic(id)).length >= 2
        ),
    );

    // mcs/events/deviceService/start, once per proxy.
    const starts = observer.on("mcs/events/deviceService/start").filter((e) =>
      [idOk, idSlow, idRefused, idBroken].includes(e.proxyid as number)
    );
    assert.equal(starts.length, 4);
    for (const start of starts) {
      assert.deepEqual(Object.keys(start), ["message", "proxyid", "status", "timestamp"]);
      assert.equal(start.message, "OK");
      assert.equal(start.status, "start");
      assert.ok(!Number.isNaN(Date.parse(start.timestamp as string)));
    }

    // Healthy: the seed's health example field for field, types included.
    for (const event of observer.on(proxyTopic(idOk))) {
      assertKeys(event, ["response_time"], "a healthy event");
      assert.equal(event.message, "OK");
      assert.equal(event.proxyid, idOk);
      assert.equal(event.status, "healthy");
      assert.equal(event.proxyServiceAlive, "1");
      assert.equal(event.proxyServiceStart, "1");
      assert.equal(typeof event.response_time, "number");
      assert.ok((event.response_time as number) >= 0 && (event.response_time as number) < 2);
    }
    // Slow past its timeout: the seed's error example byte for byte.
    for (const m of observer.messages.filter((m) => m.topic === proxyTopic(idSlow))) {
      assert.equal(
        m.raw,
        `{"message":"timeout_NG","proxyid":${idSlow},"status":"timeout","proxyServiceAlive":"0","proxyServiceStart":"0","timeout_type":"health_check"}`,
      );
    }
    for (const event of observer.on(proxyTopic(idRefused))) {
      assertKeys(event, ["error_type", "error_message"], "a connection error event");
      assert.equal(event.message, "connection_NG");
      assert.equal(event.proxyid, idRefused);
      assert.equal(event.status, "connection_error");
      assert.equal(event.proxyServiceAlive, "0");
      assert.equal(event.proxyServiceStart, "0");
      assert.equal(event.error_type, "connection_refused");
      assert.match(event.error_message as string, /refused/i);
    }
    for (const event of observer.on(proxyTopic(idBroken))) {
      assertKeys(event, ["http_status", "response_time", "error_message"], "an unhealthy event");
      assert.equal(event.message, "NG");
      assert.equal(event.status, "unhealthy");
      assert.equal(event.proxyServiceAlive, "0");
      assert.equal(event.proxyServiceStart, "0");
      assert.equal(event.http_status, 500);
      assert.equal(typeof event.response_time, "number");
      assert.equal(event.error_message, "HTTP 500 Internal Server Error");
    }
    // The device side of each check.
    for (const event of observer.on(deviceTopic(idOk))) {
      assertKeys(event, ["response_time", "device_info"], "an active device event");
      assert.equal(event.status, "active");
      assert.deepEqual(event.device_info, { status: "ok", controller_type: "E82", remark: "stand-in" });
    }
    for (
      const [id, message, reason] of [
        [idSlow, "timeout_NG", "timeout"],
        [idRefused, "connection_NG", "connection_error"],
        [idBroken, "NG", "unhealthy"],
      ] as const
    ) {
      for (const event of observer.on(deviceTopic(id))) {
        assert.deepEqual(event, {
          message,
          proxyid: id,
          status: "inactive",
          proxyServiceAlive: "0",
          proxyServiceStart: "0",
          reason,
        });
      }
    }
    // The fleet summary, sent once every proxy had answered.
    const summary = await waitFor(
      "our fleet summary",
      () =>
        observer.on("mcs/events/ProxyService/status").find((e) =>
          Array.isArray(e.proxies) && (e.proxies as Json[]).some((p) => p.proxyid === idOk)
        ),
    );
    assert.deepEqual(Object.keys(summary), [
      "message",
      "status",
      "total",
      "healthy",
      "unhealthy",
      "unknown",
      "proxies",
      "timestamp",
    ]);
    assert.equal(summary.message, "NG");
    assert.equal(summary.status, "degraded");
    assert.deepEqual([summary.total, summary.healthy, summary.unhealthy, summary.unknown], [4, 1, 3, 0]);
    assert.deepEqual((summary.proxies as Json[]).map((p) => [p.proxyid, p.status]), [
      [idOk, "healthy"],
      [idSlow, "timeout"],
      [idRefused, "connection_error"],
      [idBroken, "unhealthy"],
    ]);

    // Handlers got messages back from the broker; a throwing one did not stop the other.
    await waitFor("the handler to see our proxy", () => fromGateway.length > 0);
    await observer.client.publishAsync(customTopic, "hello", { qos: 1 });
    await waitFor("the custom handler", () => custom.length === 1);
    assert.deepEqual(custom, ["hello"]);
    assert.ok(gateway.devices.status().handlers.failures >= 1);

    // GET /api/v1/proxies: behind the bearer token like every /api/* route
    assert.equal((await gateway.app.request("/api/v1/proxies")).status, 401);
    const bearer = { authorization: `Bearer ${gateway.apiToken}` };
    const listed = await gateway.app.request("/api/v1/proxies", { headers: bearer });
    assert.equal(listed.status, 200);
    const { proxies } = await listed.json() as { proxies: Json[] };
    assert.deepEqual(proxies.map((p) => [p.proxyid, (p.last as Json).status]), [
      [idOk, "healthy"],
      [idSlow, "timeout"],
      [idRefused, "connection_error"],
      [idBroken, "unhealthy"],
    ]);
    assert.equal(proxies[0]!.name, "tsc11");
    assert.equal(proxies[0]!.base_url, healthy.url);
    const history = proxies[1]!.history as Json;
    assert.ok((history.checks as number) >= 2);
    assert.ok((history.consecutive_failures as number) >= 2);
    assert.ok(((history.by_status as Json).timeout as number) >= 2);
    assert.ok(Array.isArray(history.recent));
    const one = await gateway.app.request(`/api/v1/proxies/${idBroken}`, { headers: bearer });
    assert.equal(((await one.json() as Json).last as Json).http_status, 500);

    // POST /api/v1/proxies/{proxyid}/controller/start
    const start = async (id: number | string, body?: unknown) => {
      const res = await gateway.app.request(`/api/v1/proxies/${id}/controller/start`, {
        method: "POST",
        body: body === undefined ? undefined : JSON.stringify(body),
        headers: { "content-type": "application/json", ...bearer },
      });
      return { status: res.status, body: await res.json() as Json };
    };
    const started = await start(idOk, { mode: "auto" });
    assert.equal(started.status, 200);
    assert.equal(started.body.published, "sent");
    const controllerEvent = {
      message: "OK",
      proxyid: idOk,
      status: "controller_started",
      proxyServiceAlive: "1",
      proxyServiceStart: "1",
      response_data: { start_status: "success", details: "Controller started successfully" },
    };
    assert.deepEqual(started.body.event, controllerEvent);
    const seen = await waitFor(
      "the controller event",
      () => observer.on(proxyTopic(idOk)).find((e) => e.status === "controller_started"),
    );
    assert.deepEqual(seen, controllerEvent);
    assert.equal(healthy.requests.find((r) => r.path === "/controller/start")?.body, '{"mode":"auto"}');

    const timedOut = await start(idSlow);
    assert.equal(timedOut.status, 504);
    assert.equal((timedOut.body.error as Json).code, "proxy_timeout");
    assert.equal((timedOut.body.event as Json).timeout_type, "controller_start");
    await waitFor(
      "the controller timeout event",
      () => observer.on(proxyTopic(idSlow)).find((e) => e.timeout_type === "controller_start"),
    );
    const unreachable = await start(idRefused);
    assert.equal(unreachable.status, 502);
    assert.equal((unreachable.body.error as Json).code, "proxy_unreachable");
    const failed = await start(idBroken);
    assert.equal(failed.status, 502);
    assert.equal((failed.body.event as Json).status, "controller_start_failed");
    assert.equal((await start("abc")).status, 422);
    assert.equal((await start(idOk + 10)).status, 404);
    assert.equal((await start(idOk, undefined)).status, 200);

    // GET /mqtt/status
    const status = await (await gateway.app.request("/mqtt/status", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).json() as Json;
    assert.equal(status.connected, true);
    assert.deepEqual(status.roles, ["devices"]);
    assert.deepEqual(status.backends, { broker: "external", queue: null, database: null });
    const devices = status.devices as Json;
    assert.deepEqual((devices.proxies as Json[]).map((p) => p.status), [
      "healthy",
      "timeout",
      "connection_error",
      "unhealthy",
    ]);
    assert.equal((devices.events as Json).buffered, 0);
    assert.equal((devices.events as Json).dropped, 0);
    assert.ok((status.subscriptions as string[]).includes("mcs/events/DeviceService/status/+"));
    const metrics = await (await gateway.app.request("/metrics", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).text();
    assert.match(metrics, /gateway_devices_checks_total\{status="timeout"\} \d+/);
  } finally {
    await gateway.close();
    await observer.close();
    await Promise.all([healthy.close(), slow.close(), broken.close()]);
  }
});

/** A mosquitto of our own, on a free port, with persistence so that sessions survive its restart. */
class PrivateBroker {
  #child?: Deno.ChildProcess;
  constructor(readonly port: number, readonly dir: string) {}

  static async create(): Promise<PrivateBroker> {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const dir = await Deno.makeTempDir({ prefix: "devices-mosquitto-" });
    // mosquitto started as root drops to its own user, which must be able to write the persistence file.
    await Deno.chmod(dir, 0o777);
    await Deno.writeTextFile(
      `${dir}/mosquitto.conf`,
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence true",
        `persistence_location ${dir}/`,
        "log_dest none",
        // Root without the right to switch users (a user namespace, `unshare -r`) stays root.
        ...(Deno.uid() === 0 ? ["user root"] : []),
      ].join("\n") + "\n",
    );
    return new PrivateBroker(port, dir);
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.#child = new Deno.Command("mosquitto", {
      args: ["-c", `${this.dir}/mosquitto.conf`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch (error) {
        if (Date.now() > end) throw new Error(`mosquitto did not listen on ${this.port}`, { cause: error });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    child.kill("SIGTERM");
    await child.status;
  }

  async remove(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("broker restarted during checks: events are kept (bounded, drops counted) and sent in order on reconnect", async () => {
  const broker = await PrivateBroker.create();
  await broker.start();
  // Its health answer counts the checks, so the subscriber can tell which check an event came from.
  let checks = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    checks++;
    return Response.json({ status: "ok", seq: checks });
  });
  const proxyid = 7;
  // A session of its own on the broker (persisted across the restart), so nothing sent while it
  // reconnects is lost to it.
  const observer = await Observer.connect(broker.url, {
    clean: false,
    properties: { sessionExpiryInterval: 300 },
  });
  const gateway = new Gateway(loadConfig({
    GATEWAY_ROLES: "devices",
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: `devices-restart-${randomSuffix()}`,
    MQTT_RECONNECT_DELAY: "0.1",
    MQTT_RECONNECT_MAX_DELAY: "0.3",
    DEVICE_EVENT_BUFFER: "6",
    DEVICE_SUMMARY_INTERVAL_MS: "0",
    DEVICE_PROXIES: JSON.stringify([
      { proxyid, base_url: `http://127.0.0.1:${server.addr.port}`, timeout_ms: 1000, interval_ms: 100 },
    ]),
  }));
  const deviceSeqs = () =>
    observer.on(`mcs/events/DeviceService/status/${proxyid}`).map((e) =>
      (e.device_info as Json).seq as number
    );
  try {
    await gateway.start();
    await waitFor("events through the broker", () => deviceSeqs().length >= 3);

    await broker.stop();
    const devices = gateway.devices!;
    // Two events per check and room for six: after a few checks the oldest are dropped.
    await waitFor(
      "drops while the broker is down",
      () => devices.publisher.dropped >= 4 && !gateway.connection!.connected,
    );
    const lastBefore = Math.max(...deviceSeqs());
    assert.equal(devices.publisher.buffered, 6);
    const down = await (await gateway.app.request("/mqtt/status", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).json() as Json;
    assert.equal(down.connected, false);
    assert.equal(((down.devices as Json).events as Json).buffered, 6);

    // Runs after the publisher's own listener, which has handed the kept events over by then.
    let checksAtReconnect = 0;
    let droppedAtReconnect = 0;
    gateway.connection!.onConnect(() => {
      checksAtReconnect ||= checks;
      droppedAtReconnect ||= devices.publisher.dropped;
    });
    await broker.start();
    await waitFor(
      "the gateway to reconnect and empty its buffer",
      () => checksAtReconnect > 0 && devices.publisher.buffered === 0,
    );
    await waitFor("checks after the restart", () => deviceSeqs().some((s) => s > checksAtReconnect + 2));

    // A QoS 1 redelivery may repeat a message; the first copy is the one whose place counts.
    const seqs = [...new Set(deviceSeqs())];
    // In order across the outage: what mqtt.js still held, then the kept events, then the new ones.
    for (let i = 1; i < seqs.length; i++) {
      assert.ok(seqs[i]! > seqs[i - 1]!, `order at ${i}: ${seqs.join(",")}`);
    }
    // Of the checks made while the broker was down, the newest were kept and the oldest dropped.
    const during = seqs.filter((s) => s > lastBefore && s <= checksAtReconnect);
    const missing = checksAtReconnect - lastBefore - during.length;
    const detail = `received ${seqs.join(",")}; down after ${lastBefore}, back at ${checksAtReconnect}; ${
      JSON.stringify(devices.publisher.stats())
    }`;
    assert.ok(during.length >= 3, detail);
    assert.ok(during.at(-1)! >= checksAtReconnect - 1, detail);
    assert.equal(missing * 2, droppedAtReconnect, detail);
    assert.deepEqual(
      during.slice(-3),
      [during.at(-1)! - 2, during.at(-1)! - 1, during.at(-1)!],
      `the kept checks are the last ones: ${detail}`,
    );

    const metrics = await (await gateway.app.request("/metrics", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).text();
    const dropped = Number(/gateway_devices_events_dropped_total (\d+)/.exec(metrics)?.[1]);
    assert.equal(dropped, devices.publisher.dropped);
    assert.ok(dropped >= 4);
    const up = await (await gateway.app.request("/mqtt/status", {
      headers: { authorization: `Bearer ${gateway.apiToken}` },
    })).json() as Json;
    assert.equal(up.connected, true);
    assert.ok(((up.connection as Json).reconnects as number) >= 1);
  } finally {
    await gateway.close();
    await observer.close();
    await server.shutdown();
    await broker.remove();
  }
});

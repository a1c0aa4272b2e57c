/**
 * @module edge_test
 * `docs/edge.md` as written: its two commands (the gateway with the embedded broker admitting a local
 * service, then the device service beside it) run as two processes through the `start` task's launcher,
 * with only the ports moved to free ones and the proxy replaced by a stand-in.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { freePort, LaunchedGateway, REPO_ROOT, startTaskFlags } from "./launched_gateway.ts";
import { startStandIn } from "./fakes/proxy_stand_in.ts";
import { waitFor } from "./support.ts";

/** The `VAR=value … npx -y deno@2.9.6 task start` commands of the doc's first `sh` block. */
async function documentedCommands(): Promise<Record<string, string>[]> {
  const doc = await Deno.readTextFile(`${REPO_ROOT}docs/edge.md`);
  const block = /```sh\n([\s\S]*?)```/.exec(doc)![1]!;
  const commands: Record<string, string>[] = [];
  for (const text of block.replace(/\\\n/g, " ").split("\n")) {
    const line = text.trim();
    if (!line || line.startsWith("#")) continue;
    assert.match(line, /npx -y deno@2\.9\.6 task start$/, line);
    const env: Record<string, string> = {};
    for (const m of line.matchAll(/([A-Z0-9_]+)=('([^']*)'|\S+)/g)) env[m[1]!] = m[3] ?? m[2]!;
    commands.push(env);
  }
  return commands;
}

Deno.test("docs/edge.md: the device service beside the embedded broker, two processes, as written", async () => {
  const [gatewayEnv, devicesEnv] = await documentedCommands();
  assert.ok(gatewayEnv && devicesEnv, "two commands");
  const proxy = startStandIn("healthy");
  const brokerPort = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "gw-edge-" });
  const flags = await startTaskFlags();
  const launch = (env: Record<string, string>) =>
    new LaunchedGateway({ cwd: REPO_ROOT, launcher: "launch.ts", entry: "main.ts", env, denoFlags: flags });

  // Where the doc uses fixed ports (2834, 5200, 5201, 5555), free ones; everything else as written.
  assert.equal(devicesEnv.MQTT_BROKER_PORT, "2834");
  const gateway = launch({
    ...gatewayEnv,
    MQTT_LISTEN_PORT: String(brokerPort),
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(freePort()),
    DATA_DIR: dataDir,
  });
  const proxies = JSON.parse(devicesEnv.DEVICE_PROXIES!) as { base_url: string }[];
  assert.equal(proxies[0]!.base_url, "http://127.0.0.1:5555");
  proxies[0]!.base_url = proxy.url;
  let devices: LaunchedGateway | undefined;
  let watcher: mqtt.MqttClient | undefined;
  try {
    await gateway.healthy();
    devices = launch({
      ...devicesEnv,
      MQTT_BROKER_PORT: String(brokerPort),
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(freePort()),
      DEVICE_PROXIES: JSON.stringify(proxies),
    });
    await devices.healthy();
    assert.match(devices.output, /refused MQTT 5; connecting with MQTT 3\.1\.1/);

    // The watcher of the doc: the service identity, MQTT 3.1.1.
    watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, {
      protocolVersion: 4,
      username: gatewayEnv.MQTT_SERVICE_USERNAME,
      password: gatewayEnv.MQTT_SERVICE_PASSWORD,
      clientId: "watcher",
      reconnectPeriod: 0,
    });
    const seen: { topic: string; body: Record<string, unknown> }[] = [];
    watcher.on("message", (topic, payload) => seen.push({ topic, body: JSON.parse(payload.toString()) }));
    await watcher.subscribeAsync("mcs/events/#", { qos: 1 });
    await assert.rejects(
      watcher.subscribeAsync("machine/+/command", { qos: 1 }),
      /Subscribe error/,
      "the service identity may not read machines' commands",
    );

    const healthy = await waitFor(
      () => seen.find((m) => m.topic === "mcs/events/ProxyService/status/1" && m.body.status === "healthy"),
      20_000,
      `a healthy status of proxy 1 (seen: ${JSON.stringify(seen.map((m) => m.topic))})\n${devices.output}`,
    );
    assert.equal(healthy.body.proxyid, 1);
    assert.ok(proxy.requests.some((r) => r.path === "/health"));

    assert.equal(await devices.stop(), 0, devices.output);
    assert.equal(await gateway.stop(), 0, gateway.output);
  } finally {
    await watcher?.endAsync(true);
    await devices?.stop(5000);
    await gateway.stop(5000);
    await proxy.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config.ts";
import { parseProxyRegistry } from "./proxy_registry.ts";

Deno.test("parseProxyRegistry fills defaults and trims the base URL", () => {
  assert.deepEqual(parseProxyRegistry('[{"proxyid": 1, "base_url": "http://10.0.0.5:5555/"}]'), [{
    proxyid: 1,
    base_url: "http://10.0.0.5:5555",
    health_path: "/health",
    controller_start_path: "/controller/start",
    timeout_ms: 5000,
    interval_ms: 30000,
  }]);
  const [full] = parseProxyRegistry(JSON.stringify([{
    proxyid: 55,
    base_url: "https://proxy.local",
    health_path: "/api/health",
    controller_start_path: "/api/start",
    timeout_ms: 800,
    controller_timeout_ms: 3000,
    interval_ms: 2000,
    name: "tsc11",
  }]));
  assert.equal(full!.controller_timeout_ms, 3000);
  assert.equal(full!.name, "tsc11");
});

Deno.test("parseProxyRegistry names the entry and field that is wrong", () => {
  const bad: [string, RegExp][] = [
    ["nope", /not valid JSON/],
    ['{"proxyid": 1}', /top level.*array/],
    ['[{"proxyid": "1", "base_url": "http://x"}]', /\[0\]\.proxyid/],
    ['[{"proxyid": 1.5, "base_url": "http://x"}]', /\[0\]\.proxyid/],
    ['[{"proxyid": 1, "base_url": "ftp://x"}]', /\[0\]\.base_url: must be an http/],
    [
      '[{"proxyid": 1, "base_url": "http://x", "health_path": "health"}]',
      /\[0\]\.health_path: must start with \//,
    ],
    ['[{"proxyid": 1, "base_url": "http://x", "timeout_ms": 0}]', /\[0\]\.timeout_ms/],
    ['[{"proxyid": 1, "base_url": "http://x", "interval": 5}]', /Unrecognized key/],
    [
      '[{"proxyid": 1, "base_url": "http://x"}, {"proxyid": 1, "base_url": "http://y"}]',
      /\[1\]\.proxyid: proxyid 1 appears twice/,
    ],
  ];
  for (const [text, message] of bad) assert.throws(() => parseProxyRegistry(text), message, text);
});

Deno.test("loadConfig reads DEVICE_PROXIES, DEVICE_PROXIES_FILE and the device settings", async () => {
  assert.deepEqual(loadConfig({}).devices, { proxies: [], eventBuffer: 1000, summaryIntervalMs: 60_000 });
  const inline = loadConfig({
    DEVICE_PROXIES: '[{"proxyid": 2, "base_url": "http://127.0.0.1:9"}]',
    DEVICE_EVENT_BUFFER: "5",
    DEVICE_SUMMARY_INTERVAL_MS: "0",
  });
  assert.equal(inline.devices.proxies[0]!.proxyid, 2);
  assert.equal(inline.devices.eventBuffer, 5);
  assert.equal(inline.devices.summaryIntervalMs, 0);

  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, '[{"proxyid": 3, "base_url": "http://127.0.0.1:9", "interval_ms": 1000}]');
    assert.equal(loadConfig({ DEVICE_PROXIES_FILE: file }).devices.proxies[0]!.interval_ms, 1000);
    await Deno.writeTextFile(file, '[{"proxyid": -3, "base_url": "http://127.0.0.1:9"}]');
    assert.throws(
      () => loadConfig({ DEVICE_PROXIES_FILE: file }),
      (e: unknown) =>
        e instanceof ConfigError && e.variable === "DEVICE_PROXIES_FILE" && /\[0\]\.proxyid/.test(e.message),
    );
  } finally {
    await Deno.remove(file);
  }
  assert.throws(
    () => loadConfig({ DEVICE_PROXIES_FILE: "/nonexistent/proxies.json" }),
    (e: unknown) =>
      e instanceof ConfigError && e.variable === "DEVICE_PROXIES_FILE" && /cannot read/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ DEVICE_PROXIES: "[]", DEVICE_PROXIES_FILE: "/x.json" }),
    (e: unknown) => e instanceof ConfigError && /not both/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ DEVICE_PROXIES: "[{]" }),
    (e: unknown) => e instanceof ConfigError && e.variable === "DEVICE_PROXIES",
  );
  assert.throws(() => loadConfig({ DEVICE_EVENT_BUFFER: "-1" }), ConfigError);
});

import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { v8Flags } from "./v8_flags.ts";

const EXTERNAL = { MQTT_URL: "mqtt://emqx:1883" };

Deno.test("v8 flags: 128 MB old space, 6 MB semi-spaces and a 2.5x growth by default, none when 0, scaled otherwise", () => {
  assert.deepEqual(v8Flags(loadConfig(EXTERNAL).heapMb), [
    "--v8-flags=--max-old-space-size=128,--max-semi-space-size=6,--heap-growing-percent=150",
  ]);
  assert.deepEqual(v8Flags(0), []);
  assert.deepEqual(v8Flags(loadConfig({ ...EXTERNAL, GATEWAY_HEAP_MB: "1024" }).heapMb), [
    "--v8-flags=--max-old-space-size=1024,--max-semi-space-size=16,--heap-growing-percent=150",
  ]);
  assert.deepEqual(v8Flags(256), [
    "--v8-flags=--max-old-space-size=256,--max-semi-space-size=12,--heap-growing-percent=150",
  ]);
  // Below 128 MB the heap is near the live data already: V8's own growth, smaller semi-spaces.
  assert.deepEqual(v8Flags(96), ["--v8-flags=--max-old-space-size=96,--max-semi-space-size=3"]);
  assert.deepEqual(v8Flags(16), ["--v8-flags=--max-old-space-size=16,--max-semi-space-size=1"]);
});

Deno.test("v8 flags: 80 MB old space by default when the process runs the embedded broker", () => {
  assert.deepEqual(v8Flags(loadConfig({}).heapMb), [
    "--v8-flags=--max-old-space-size=80,--max-semi-space-size=2",
  ]);
  // A broker host is an external broker too; a worker-only process runs no broker.
  assert.equal(loadConfig({ MQTT_BROKER_HOST: "emqx" }).heapMb, 128);
  assert.equal(loadConfig({ GATEWAY_ROLES: "worker,api" }).heapMb, 128);
  assert.equal(loadConfig({ GATEWAY_ROLES: "downlink" }).heapMb, 80);
  assert.equal(loadConfig({ GATEWAY_HEAP_MB: "128" }).heapMb, 128, "an explicit value wins");
  assert.equal(loadConfig({ GATEWAY_HEAP_MB: "0" }).heapMb, 0);
});

import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { v8Flags } from "./v8_flags.ts";

Deno.test("v8 flags: 128 MB old space and 4 MB semi-spaces by default, none when 0, scaled otherwise", () => {
  assert.deepEqual(v8Flags(loadConfig({}).heapMb), [
    "--v8-flags=--max-old-space-size=128,--max-semi-space-size=4",
  ]);
  assert.deepEqual(v8Flags(0), []);
  assert.deepEqual(v8Flags(loadConfig({ GATEWAY_HEAP_MB: "1024" }).heapMb), [
    "--v8-flags=--max-old-space-size=1024,--max-semi-space-size=16",
  ]);
  assert.deepEqual(v8Flags(16), ["--v8-flags=--max-old-space-size=16,--max-semi-space-size=1"]);
});

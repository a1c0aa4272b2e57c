/**
 * @module observability_test
 * The gateway as `deno task start` runs it (the launcher's narrow permissions), with `LOG_FORMAT=json`:
 * every line it prints is one JSON object, `/metrics` has the standard `process_*` metrics with real
 * values and `gateway_build_info` with deno.json's version, and every metric the Grafana dashboard in
 * `deploy/grafana/` queries is one the gateway exports.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoJson from "../deno.json" with { type: "json" };
import { freePort, LaunchedGateway, REPO_ROOT, startTaskFlags } from "./launched_gateway.ts";

/** Metric names the scrape declares (`# TYPE`), histograms with their series' suffixes. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === "histogram") { for (const s of ["_bucket", "_sum", "_count"]) names.add(m[1]! + s); }
  }
  return names;
}

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  assert.ok(m, `${name} in the scrape`);
  return Number(m[1]);
}

Deno.test("deno task start, LOG_FORMAT=json: JSON lines only; /metrics has process_* and build info; the dashboard's metrics exist", async () => {
  const dataDir = join(await Deno.makeTempDir({ prefix: "gw-obs-" }), "data");
  const gateway = new LaunchedGateway({
    cwd: REPO_ROOT,
    launcher: "launch.ts",
    entry: "main.ts",
    env: {
      LOG_FORMAT: "json",
      API_TOKEN: "observability-test-token",
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(freePort()),
      MQTT_LISTEN_PORT: String(freePort()),
      DATA_DIR: dataDir,
    },
    denoFlags: await startTaskFlags(),
  });
  try {
    await gateway.healthy();
    const text = await (await fetch(`http://127.0.0.1:${gateway.port}/metrics`, {
      headers: { authorization: "Bearer observability-test-token" },
    })).text();
    assert.ok(sample(text, "process_resident_memory_bytes") > 10_000_000, "resident memory, not 0");
    assert.ok(sample(text, "process_cpu_seconds_total") > 0);
    assert.ok(Math.abs(sample(text, "process_start_time_seconds") - Date.now() / 1000) < 300);
    assert.match(
      text,
      new RegExp(`^gateway_build_info\\{version="${denoJson.version}",deno="[^"]+",v8="[^"]+"\\} 1$`, "m"),
    );

    const dashboard = await Deno.readTextFile(`${REPO_ROOT}deploy/grafana/gateway-dashboard.json`);
    const queried = new Set(
      [...dashboard.matchAll(/"expr": "([^"\\]|\\.)*"/g)].flatMap((m) =>
        [...m[0].matchAll(/\b(?:gateway|process)_[a-z_]+\b/g)].map((n) => n[0])
      ),
    );
    assert.ok(queried.size > 10, [...queried].join(" "));
    const names = exported(text);
    // Open file descriptors are read from /proc/self, which Deno grants only with --allow-all.
    const procOnly = new Set(["process_open_fds", "process_max_fds"]);
    assert.deepEqual(
      [...queried].filter((n) => !names.has(n) && !procOnly.has(n)),
      [],
      "queried, not exported",
    );

    assert.equal(await gateway.stop(), 0, gateway.output);
    const lines = gateway.output.split("\n").filter((l) => l.trim() !== "");
    assert.ok(lines.length > 3, gateway.output);
    for (const line of lines) {
      const record = JSON.parse(line);
      assert.equal(typeof record.level, "string", line);
      assert.equal(typeof record.message, "string", line);
    }
  } finally {
    await gateway.stop(5000);
    await Deno.remove(join(dataDir, ".."), { recursive: true });
  }
});

/**
 * @module demo_test
 * The quick start of docs/getting-started.md as written: `deno task demo` (gateway + simulator), its one
 * dispense to SIM-01 succeeds, every curl line it prints works as pasted, every machine's 8 slots are
 * stocked and none is below 0 after its sales, Ctrl-C stops everything with exit code 0; and `deno task demo --once` ends by itself after the dispense. Only the ports and the data
 * folder are moved (the doc's 5200 / 2834 / ./data may be in use on a shared machine).
 */
import assert from "node:assert/strict";
import { baseEnv, freePort, REPO_ROOT } from "./launched_gateway.ts";

function demo(args: string[], dataDir: string) {
  const httpPort = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "demo", ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: {
      ...baseEnv(),
      HTTP_PORT: String(httpPort),
      MQTT_LISTEN_PORT: String(freePort()),
      DATA_DIR: dataDir,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const drained = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  }));
  return { child, drained, output: () => output, api: `http://127.0.0.1:${httpPort}` };
}

async function waitForOutput(d: ReturnType<typeof demo>, pattern: RegExp, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  d.child.status.then(() => exited = true);
  while (!pattern.test(d.output())) {
    if (exited || Date.now() > deadline) assert.fail(`no ${pattern} in the demo's output:\n${d.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("deno task demo: one dispense succeeds, the printed curl lines work as pasted, Ctrl-C stops it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw-demo-" });
  const d = demo([], dataDir);
  try {
    await waitForOutput(d, /Ctrl-C stops the simulator and the gateway\./);
    assert.match(
      d.output(),
      /The dispense succeeded \([\d.]+ s\): MSG_\S+ sent at \S+, acknowledged at \S+\./,
    );
    const curls = d.output().split("\n").map((l) => l.trim()).filter((l) => l.startsWith("curl "));
    assert.equal(curls.length, 6, d.output());
    for (const line of curls) {
      const { code, stdout, stderr } = await new Deno.Command("sh", { args: ["-c", line] }).output();
      assert.equal(code, 0, `${line}\n${new TextDecoder().decode(stderr)}`);
      JSON.parse(new TextDecoder().decode(stdout)); // every answer is JSON
    }
    // The machines have been selling meanwhile: within the stock the gateway knows, never below 0.
    const token = /API token of this run: (\S+)/.exec(d.output())![1]!;
    for (let i = 1; i <= 10; i++) {
      const serial = `SIM-${String(i).padStart(2, "0")}`;
      const res = await fetch(`${d.api}/api/v1/machines/${serial}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const { slots } = await res.json() as { slots: { slot_no: number; stock: number }[] };
      assert.deepEqual(slots.map((s) => s.slot_no), [1, 2, 3, 4, 5, 6, 7, 8], serial);
      for (const s of slots) {
        assert.ok(s.stock >= 0 && s.stock <= 20, `${serial} slot ${s.slot_no}: ${s.stock}`);
      }
    }
    d.child.kill("SIGINT");
    assert.equal((await d.child.status).code, 0, d.output());
  } finally {
    try {
      d.child.kill("SIGKILL");
    } catch { /* exited */ }
    await d.child.status;
    await d.drained;
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("deno task demo --once: ends by itself, exit 0, after the dispense", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw-demo-" });
  const d = demo(["--once"], dataDir);
  try {
    const status = await d.child.status;
    await d.drained;
    assert.equal(status.code, 0, d.output());
    assert.match(d.output(), /The dispense succeeded/);
    assert.doesNotMatch(d.output(), /\.env.+not found/i, "no .env warning");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

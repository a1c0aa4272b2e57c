/**
 * @module shutdown_test
 * The real process: `main.ts` started as a subprocess, sent SIGTERM while messages flow, must
 * finish what it took, close and exit 0.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { machineClient, publishJson, query, testEnv, uniqueId, waitFor } from "./support.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("SIGTERM: stops taking messages, finishes in-flight jobs, closes and exits 0", async () => {
  const t = await testEnv();
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...t.env, HTTP_HOST: "127.0.0.1", HTTP_PORT: String(port), LOG_LEVEL: "info", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const machine = await machineClient();
  try {
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/mqtt/status`).catch(() => null);
        const body = await res?.json();
        return body?.connection?.subscribed === true;
      },
      20_000,
      "the gateway to subscribe",
    );
    const serial = uniqueId("M-");
    for (let i = 0; i < 50; i++) {
      await publishJson(machine, `machine/${serial}/transaction`, {
        transaction_id: `${serial}-${i}`,
        slot_no: 1,
        quantity: 1,
        amount: 1,
      });
    }
    child.kill("SIGTERM");
    const { code } = await child.status;
    assert.equal(code, 0, "exit code");
    const [{ n }] = await query<{ n: number }>(
      t.db.url,
      "SELECT COUNT(*) AS n FROM transactions WHERE serial_no = ?",
      [
        serial,
      ],
    ) as [{ n: number }];
    // Everything PUBACKed was queued; what the worker had not taken waits in Redis for the next start.
    const redis = new Redis(t.env.REDIS_URL!);
    const left = await redis.llen(t.env.MQTT_INCOMING_QUEUE!);
    const keys = await redis.keys(`${t.env.MQTT_INCOMING_QUEUE}:processing:*`);
    const processing = await Promise.all(keys.map((k) => redis.llen(k)));
    redis.disconnect();
    assert.equal(Number(n) + left, 50, "every acknowledged message is in the DB or still queued");
    assert.deepEqual(processing.filter((x) => x > 0), [], "no job is left half-done in a processing list");
  } finally {
    await machine.endAsync();
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    const out = new TextDecoder().decode(
      (await child.output().catch(() => ({ stdout: new Uint8Array() }))).stdout,
    );
    if (out && Deno.env.get("DEBUG_TESTS")) console.log(out);
    await t.cleanup();
  }
});

/**
 * @module shutdown_test
 * The real process: `main.ts` started as a subprocess and sent SIGTERM while messages flow must
 * finish what it took, close and exit 0; what it had not taken waits at the broker (persistent
 * session) or in Redis, and the next start processes it, once.
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

function spawnGateway(env: Record<string, string>, port: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...env, HTTP_HOST: "127.0.0.1", HTTP_PORT: String(port), LOG_LEVEL: "warning", NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function subscribed(port: number, token: string): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/mqtt/status`, {
    headers: { authorization: `Bearer ${token}` },
  }).catch(() => null);
  const body = await res?.json();
  return body?.connection?.subscribed === true;
}

Deno.test("SIGTERM mid-flow: exits 0, leaves nothing half-done, and the next start processes the rest once", async () => {
  const t = await testEnv();
  const port = freePort();
  const machine = await machineClient();
  const redis = new Redis(t.env.REDIS_URL!);
  let child = spawnGateway(t.env, port);
  const count = async (serial: string) =>
    Number(
      (await query<{ n: number }>(t.db.url, "SELECT COUNT(*) AS n FROM transactions WHERE serial_no = ?", [
        serial,
      ]))[0]!
        .n,
    );
  try {
    await waitFor(() => subscribed(port, t.env.API_TOKEN!), 20_000, "the gateway to subscribe");
    const serial = uniqueId("M-");
    for (let i = 0; i < 200; i++) {
      await publishJson(machine, `machine/${serial}/transaction`, {
        transaction_id: `${serial}-${i}`,
        slot_no: 1,
        quantity: 1,
        amount: 1,
      });
    }
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, "exit code after SIGTERM");
    const keys = await redis.keys(`{${t.env.MQTT_INCOMING_QUEUE}}:processing:*`);
    const processing = await Promise.all(keys.map((k) => redis.llen(k)));
    assert.deepEqual(processing.filter((x) => x > 0), [], "no job is left half-done in a processing list");

    child = spawnGateway(t.env, port);
    // A signal that arrives before main.ts has installed its listeners kills the process outright.
    await waitFor(() => subscribed(port, t.env.API_TOKEN!), 20_000, "the restarted gateway to subscribe");
    await waitFor(async () => await count(serial) === 200, 20_000, "all 200 transactions after the restart");
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, "exit code after the second SIGTERM");
    assert.equal(await count(serial), 200);
    const [slot] = await query<{ stock: number }>(
      t.db.url,
      "SELECT stock FROM machine_slots WHERE serial_no = ?",
      [
        serial,
      ],
    );
    assert.equal(slot!.stock, -200, "each sale decremented the stock once");
  } finally {
    redis.disconnect();
    await machine.endAsync();
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await t.cleanup();
  }
});

/**
 * The downlink on the embedded store and queue (no services): a producer's command pushed without
 * a message_id keeps the one the gateway gave it when it is handed back before being published
 * (shutdown, or a crash: recovery puts back the same leased element), so it is recorded and
 * published under one id, never again under a second one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../db/sqlite_store.ts";
import { SqliteQueue } from "../queue/sqlite_queue.ts";
import { waitFor } from "../tests/support.ts";
import { runDownlink } from "./downlink.ts";

Deno.test("downlink: a pushed command without message_id is published once, under the id it was recorded with", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gw_downlink_" });
  const store = new SqliteStore({ path: join(dir, "gateway.db") });
  await store.migrate();
  const db = SqliteQueue.openDatabase(join(dir, "queue.db"));
  const queues: SqliteQueue[] = [];
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];
  const queue = () => {
    const q = new SqliteQueue(db, "commands", { consumerId: "gw:downlink", pollMs: 10 });
    queues.push(q);
    return q;
  };
  try {
    await queue().push(JSON.stringify({ target: "M-001", command: "dispense", payload: { slot_no: 5 } }));

    // First run: the command is recorded, then the broker is never reachable and the gateway stops.
    const first = new AbortController();
    stops.push(first);
    const offline = {
      publish: () => Promise.reject(new Error("not connected")),
      waitConnected: (signal?: AbortSignal) =>
        new Promise<void>((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason))),
    };
    const run1 = runDownlink({
      queue: queue(),
      store,
      connection: offline,
      defaultTtlSeconds: 60,
      signal: first.signal,
      blockMs: 20,
    });
    runs.push(run1);
    const recorded = await waitFor(async () => (await store.listCommands("M-001", 10))[0], 5000);
    assert.equal(recorded.status, "queued");
    first.abort();
    await run1;

    // Second run, broker up: the handed-back element carries the id, so it is the same command.
    const second = new AbortController();
    stops.push(second);
    const published: { topic: string; body: Record<string, unknown> }[] = [];
    const online = {
      publish: (topic: string, body: string | Uint8Array) => {
        published.push({ topic, body: JSON.parse(String(body)) });
        return Promise.resolve();
      },
      waitConnected: () => Promise.resolve(),
    };
    const run2 = runDownlink({
      queue: queue(),
      store,
      connection: online,
      defaultTtlSeconds: 60,
      signal: second.signal,
      blockMs: 20,
    });
    runs.push(run2);
    await waitFor(async () => (await store.getCommand(recorded.messageId))?.status === "sent", 5000);
    second.abort();
    await run2;

    const rows = await store.listCommands("M-001", 10);
    assert.deepEqual(rows.map((r) => [r.messageId, r.status]), [[recorded.messageId, "sent"]]);
    assert.deepEqual(published, [{
      topic: "machine/M-001/command",
      body: { target: "M-001", command: "dispense", payload: { slot_no: 5 }, message_id: recorded.messageId },
    }]);
    assert.deepEqual(await queues[0]!.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
  } finally {
    for (const stop of stops) stop.abort();
    await Promise.allSettled(runs);
    await Promise.all(queues.map((q) => q.close()));
    db.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

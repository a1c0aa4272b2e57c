/**
 * The downlink on the embedded store and queue (no services): a producer's command pushed without
 * a message_id keeps the one the gateway gave it when it is handed back before being published
 * (shutdown, or a crash: recovery puts back the same leased element), so it is recorded and
 * published under one id, never again under a second one. Batches are pipelined, yet one machine's
 * commands go out one after the other. On Redis: the intake's hand-off is published without
 * reading its row back, and a new lock holder waits for a dead holder's commands to come back
 * before it publishes anything.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Redis } from "ioredis";
import { newCommandRecord } from "../db/command_record.ts";
import { SqliteStore } from "../db/sqlite/sqlite_store.ts";
import type { NewCommand } from "../db/store.ts";
import { RedisQueue } from "../queue/redis/redis_queue.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import { SqliteQueue } from "../queue/sqlite/sqlite_queue.ts";
import { dropRedisKeys, SERVICES, waitFor } from "../tests/support.ts";
import { CommandHandoff } from "./command_handoff.ts";
import { runDownlink } from "./downlink.ts";
import { RedisDownlinkLock } from "./downlink_lock.ts";
import { sleep } from "../lib/sleep.ts";
import { commandMessageOf, encodeCommandMessage } from "../contract/outgoing_command.ts";

/** A temporary directory with the embedded store and a queue database, removed by `close`. */
async function embedded() {
  const dir = await Deno.makeTempDir({ prefix: "gw_downlink_" });
  const store = new SqliteStore({ path: join(dir, "gateway.db") });
  await store.migrate();
  const db = SqliteQueue.openDatabase(join(dir, "queue.db"));
  const queues: SqliteQueue[] = [];
  return {
    store,
    queue: () => {
      const q = new SqliteQueue(db, "commands", { consumerId: "gw:downlink", pollMs: 10 });
      queues.push(q);
      return q;
    },
    close: async () => {
      await Promise.all(queues.map((q) => q.close()));
      db.close();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Every lease acked once the downlink's bookkeeping is done: nothing left in any state. */
async function assertDrained(queue: Pick<ReliableQueue, "depth">): Promise<void> {
  await waitFor(async () => (await queue.depth()).processing === 0 || undefined, 5000);
  assert.deepEqual(await queue.depth(), { ready: 0, processing: 0, delayed: 0, dead: 0 });
}

/** A broker connection that takes every publish at once, recording the message ids. */
function recordingConnection() {
  const published: string[] = [];
  const connection = {
    publish: (_topic: string, body: string | Uint8Array) => {
      published.push(JSON.parse(String(body)).message_id);
      return Promise.resolve();
    },
    waitConnected: () => Promise.resolve(),
  };
  return { connection, published };
}

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

Deno.test("downlink: a machine's next command waits for its PUBACK; other machines' commands do not", async () => {
  const env = await embedded();
  const { store } = env;
  const queue = env.queue();
  const stop = new AbortController();
  const published: string[] = [];
  const pubacks = new Map<string, () => void>();
  const connection = {
    publish: (_topic: string, body: string | Uint8Array) => {
      const id = JSON.parse(String(body)).message_id as string;
      published.push(id);
      return new Promise<void>((resolve) => pubacks.set(id, resolve));
    },
    waitConnected: () => Promise.resolve(),
  };
  const command = (target: string, id: string) =>
    JSON.stringify({ target, command: "ping", payload: {}, message_id: id });
  let run: Promise<void> | undefined;
  try {
    run = runDownlink({ queue, store, connection, defaultTtlSeconds: 60, signal: stop.signal, blockMs: 20 });
    await queue.push(command("M-001", "A1"));
    await waitFor(() => published.includes("A1") || undefined, 5000);
    // A1 has no PUBACK yet: the next batch goes out for M-002, M-001's second command waits.
    await queue.push(command("M-001", "A2"), command("M-002", "B1"));
    await waitFor(() => published.includes("B1") || undefined, 5000);
    assert.deepEqual(published, ["A1", "B1"]);
    pubacks.get("A1")!();
    await waitFor(() => published.includes("A2") || undefined, 5000);
    assert.deepEqual(published, ["A1", "B1", "A2"]);
    pubacks.get("B1")!();
    pubacks.get("A2")!();
    await waitFor(async () => (await store.getCommand("A2"))?.status === "sent" || undefined, 5000);
    for (const id of ["A1", "B1"]) assert.equal((await store.getCommand(id))?.status, "sent");
    await assertDrained(queue);
  } finally {
    stop.abort();
    for (const puback of pubacks.values()) puback();
    await run;
    await env.close();
  }
});

Deno.test("downlink on Redis: the intake's hand-off is published without reading its row back, and acked", async () => {
  const env = await embedded();
  const { store } = env;
  const name = `test_handoff_${crypto.randomUUID().slice(0, 8)}`;
  const redis = new Redis(SERVICES.redis, { maxRetriesPerRequest: 1 });
  const queue = new RedisQueue(redis, name, { consumerId: "gw:downlink" });
  const handoff = new CommandHandoff();
  const reads: string[][] = [];
  const createCommands = store.createCommands.bind(store);
  store.createCommands = (
    cs: readonly NewCommand[],
  ) => (reads.push(cs.map((c) => c.messageId)), createCommands(cs));
  const { connection, published } = recordingConnection();
  const stop = new AbortController();
  let run: Promise<void> | undefined;
  try {
    run = runDownlink({
      queue,
      store,
      connection,
      handoff,
      defaultTtlSeconds: 60,
      signal: stop.signal,
      blockMs: 60_000, // only the hand-off's interrupt can end the wait in time
    });
    const fresh: NewCommand = {
      messageId: "MSG_handoff_1",
      serialNo: "M-001",
      command: "dispense",
      payload: { slot_no: 5 },
      source: "api",
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 60_000),
    };
    const [{ command: row }] = await store.createCommands([fresh]);
    reads.length = 0;
    // The downlink attaches once it has recovered; until then the push would take the plain way.
    await waitFor(() => handoff.attached || undefined, 5000);
    const plain: string[] = [];
    const fallback = { push: (...raws: string[]) => (plain.push(...raws), Promise.resolve()) };
    const raw = encodeCommandMessage({ ...commandMessageOf(row!), origin: "api" });
    await handoff.push(fallback, [raw], [newCommandRecord(fresh)]);
    assert.deepEqual(plain, [], "the downlink had attached: no plain push");
    await waitFor(
      async () => (await store.getCommand(fresh.messageId))?.status === "sent" || undefined,
      10_000,
    );
    assert.deepEqual(published, [fresh.messageId]);
    assert.deepEqual(reads, [], "no read of the row the intake had just stored");
    await assertDrained(queue);
  } finally {
    stop.abort();
    await run;
    await queue.close();
    await dropRedisKeys(name);
    await redis.quit();
    await env.close();
  }
});

Deno.test("downlink on Redis: a new lock holder publishes what a dead holder had leased first, in order, once", async () => {
  const env = await embedded();
  const name = `test_handover_${crypto.randomUUID().slice(0, 8)}`;
  const redis = new Redis(SERVICES.redis, { maxRetriesPerRequest: 1 });
  const gone = new Redis(SERVICES.redis, { maxRetriesPerRequest: 1 });
  const ids = [1, 2, 3, 4].map((i) => `MSG_handover_${i}`);
  const command = (id: string, slot: number) =>
    JSON.stringify({ target: "M-001", command: "dispense", payload: { slot_no: slot }, message_id: id });
  // The previous holder leased the first two commands of the machine and died: no ack, no refresh;
  // its lock lapses long before its liveness does.
  const dead = new RedisQueue(gone, name, { consumerId: "gw-a:downlink", aliveTtlMs: 1000 });
  const queue = new RedisQueue(redis, name, { consumerId: "gw-b:downlink", aliveTtlMs: 1000 });
  const { connection, published } = recordingConnection();
  const stop = new AbortController();
  let run: Promise<void> | undefined;
  try {
    await redis.rpush(name, ...ids.map((id, i) => command(id, i + 1)));
    assert.equal((await dead.lease(2, 0)).length, 2);
    await redis.set(`{${name}}:leader`, "gw-a:downlink:previous-run", "PX", 200);
    gone.disconnect();
    run = runDownlink({
      queue,
      store: env.store,
      connection,
      lock: new RedisDownlinkLock(redis, name, "gw-b:downlink", 1000),
      handoverWaitMs: 10_000,
      defaultTtlSeconds: 60,
      signal: stop.signal,
      blockMs: 100,
    });
    await waitFor(() => published.length >= 4 || undefined, 10_000);
    await sleep(200);
    // Without the wait the new holder would publish 3 and 4 at once and 1 and 2 never (nobody
    // sweeps them back while it holds the lock), or after 3 and 4.
    assert.deepEqual(published, ids, "the machine gets its commands once, in the order they were queued");
    await assertDrained(queue);
  } finally {
    stop.abort();
    await run;
    await Promise.all([dead.close(), queue.close()]);
    await dropRedisKeys(name);
    await redis.quit();
    await env.close();
  }
});

Deno.test("downlink: the API's element without a row (its request failed) is marked failed, never published", async () => {
  const env = await embedded();
  const { store } = env;
  const queue = env.queue();
  const { connection, published } = recordingConnection();
  const stop = new AbortController();
  let run: Promise<void> | undefined;
  try {
    await queue.push(
      encodeCommandMessage({
        target: "M-001",
        command: "dispense",
        payload: {},
        message_id: "MSG_lost",
        origin: "api",
      }),
      encodeCommandMessage({ target: "M-001", command: "dispense", payload: {}, message_id: "MSG_laravel" }),
    );
    run = runDownlink({ queue, store, connection, defaultTtlSeconds: 60, signal: stop.signal, blockMs: 20 });
    await waitFor(async () => (await store.getCommand("MSG_laravel"))?.status === "sent" || undefined, 5000);
    assert.deepEqual(published, ["MSG_laravel"], "a producer's element without a row is recorded and sent");
    const lost = await store.getCommand("MSG_lost");
    assert.equal(lost?.status, "failed");
    assert.match(String(lost?.detail?.error), /request failed/);
    await assertDrained(queue);
  } finally {
    stop.abort();
    await run;
    await env.close();
  }
});

Deno.test("downlink: a poison element between two good commands is dead-lettered at once with its reason; the rest flow, across a restart", async () => {
  const env = await embedded();
  // The database refuses the row of any command whose payload says so, as MariaDB refuses a JSON
  // value it will not hold (errno 4025); everything else is stored.
  const refuses = (c: NewCommand) => c.payload.poison === true;
  const refusal = () =>
    Object.assign(new Error("CONSTRAINT `machine_commands.payload` failed"), {
      code: "ER_CONSTRAINT_FAILED",
      errno: 4025,
    });
  const overrides: Partial<SqliteStore> = {
    createCommands: (cs) => cs.some(refuses) ? Promise.reject(refusal()) : env.store.createCommands(cs),
    createCommand: (c) => refuses(c) ? Promise.reject(refusal()) : env.store.createCommand(c),
  };
  const store = new Proxy(env.store, {
    get: (target, key) => {
      if (key in overrides) return overrides[key as keyof typeof overrides];
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const { connection, published } = recordingConnection();
  const good = (id: string) =>
    JSON.stringify({ target: "M-001", command: "dispense", payload: {}, message_id: id });
  let deep: unknown = {};
  for (let i = 0; i < 40; i++) deep = { a: deep };
  const run = async (elements: string[], expected: string[]) => {
    const queue = env.queue();
    await queue.push(...elements);
    const stop = new AbortController();
    const running = runDownlink({
      queue,
      store,
      connection,
      defaultTtlSeconds: 60,
      signal: stop.signal,
      blockMs: 20,
    });
    try {
      await waitFor(() => published.length >= expected.length || undefined, 5000, "the good commands");
    } finally {
      stop.abort();
      await running;
    }
    return queue;
  };
  try {
    await run([
      good("MSG_g1"),
      good("MSG_poison").replace('"payload":{}', '"payload":{"poison":true}'),
      good("MSG_g2"),
    ], [
      "MSG_g1",
      "MSG_g2",
    ]);
    // A restart: the next gateway meets more poison first, of every kind, then a good command.
    const queue = await run([
      JSON.stringify({ target: "M-001", command: "dispense", payload: deep, message_id: "MSG_deep" }),
      JSON.stringify({
        target: "M-001",
        command: "dispense",
        payload: { note: "\ud800" },
        message_id: "MSG_lone",
      }),
      "{not json",
      JSON.stringify({ target: "m 1", command: "dispense", message_id: "MSG_target" }),
      good("MSG_g3"),
    ], ["MSG_g1", "MSG_g2", "MSG_g3"]);
    assert.deepEqual(published, ["MSG_g1", "MSG_g2", "MSG_g3"]);
    const letters = await queue.deadLetters(10);
    const reasons = letters.map((l) => l.reason).join("\n");
    assert.equal(letters.length, 5, reasons);
    assert.match(reasons, /The database refuses command MSG_poison: CONSTRAINT/);
    assert.match(reasons, /payload(\.a)+: nested deeper than 31 levels/);
    assert.match(reasons, /payload\.note: contains a lone surrogate/);
    assert.match(reasons, /Cannot parse command: .*JSON/);
    assert.match(reasons, /target: is not a valid serial_no/);
    assert.ok(letters.every((l) => l.attempts === 1), "each dead-lettered on its first attempt");
    assert.equal(await env.store.getCommand("MSG_poison"), null);
    assert.equal((await env.store.getCommand("MSG_g2"))?.status, "sent");
    await waitFor(async () => (await queue.depth()).processing === 0 || undefined, 5000);
    assert.deepEqual({ ...await queue.depth(), dead: 0 }, { ready: 0, processing: 0, delayed: 0, dead: 0 });
  } finally {
    await env.close();
  }
});

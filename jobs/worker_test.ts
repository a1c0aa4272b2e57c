import assert from "node:assert/strict";
import type { Store } from "../db/store.ts";
import type { Lease, ReliableQueue } from "../queue/reliable_queue.ts";
import { encodeBridgePayload } from "../contract/incoming_job.ts";
import { Dispatcher } from "./dispatcher.ts";
import { heartbeatJob } from "./handlers/heartbeat.ts";
import type { JobHandler } from "./job_handler.ts";
import { transactionJob } from "./handlers/transaction.ts";
import { processBatch } from "./worker.ts";

/** Records what the worker does with each lease. */
function recordingQueue() {
  const calls: { op: string; raw: string; delay?: number; countAttempt?: boolean; reason?: string }[] = [];
  const queue = {
    name: "q",
    ack: (leases: readonly Lease[]) => {
      for (const l of leases) calls.push({ op: "ack", raw: l.raw });
      return Promise.resolve();
    },
    retry: (l: Lease, delay: number, o: { countAttempt?: boolean } = {}) => {
      calls.push({ op: "retry", raw: l.raw, delay, countAttempt: o.countAttempt !== false });
      return Promise.resolve();
    },
    deadLetter: (l: Lease | null, reason: string) => {
      calls.push({ op: "dead", raw: l?.raw ?? "", reason });
      return Promise.resolve();
    },
  } as unknown as ReliableQueue;
  return { queue, calls };
}

const job = (type: string, payload: Record<string, unknown>, serial = "M-001") =>
  encodeBridgePayload({ type, serial_no: serial, payload, received_at: "2026-04-14T09:00:00+08:00" });
const lease = (raw: string, attempts = 0): Lease => ({ raw, attempts, ref: raw });

function fakeStore(overrides: Partial<Store> = {}): Store {
  return {
    ping: () => Promise.resolve(),
    recordHeartbeats: () => Promise.resolve(),
    recordTransactions: (rows) => Promise.resolve({ applied: [...rows], duplicates: [] }),
    ...overrides,
  } as Store;
}

const options = (
  queue: ReliableQueue,
  store: Store,
  handlers: JobHandler[] = [heartbeatJob, transactionJob],
) => ({
  queue,
  store,
  dispatcher: new Dispatcher(handlers),
  ctx: { store, alert: () => {} },
  batchSize: 100,
  maxAttempts: 3,
  retryBaseMs: 100,
  retryMaxMs: 1000,
});

Deno.test("one failing job in a batch does not hold back the others", async () => {
  const { queue, calls } = recordingQueue();
  const store = fakeStore({
    recordTransactions: (rows) => {
      if (rows.some((r) => r.transactionId === "BAD")) return Promise.reject(new Error("slot locked"));
      return Promise.resolve({ applied: [...rows], duplicates: [] });
    },
  });
  const tx = (id: string) => job("transaction", { transaction_id: id, slot_no: 1, quantity: 1, amount: 1 });
  const pause = await processBatch(options(queue, store), [
    lease(tx("A")),
    lease(tx("BAD")),
    lease(tx("C")),
    lease(job("heartbeat", { temperature: 1 })),
  ]);
  assert.equal(pause, 0);
  assert.deepEqual(
    calls.filter((c) => c.op === "ack").map((c) => JSON.parse(c.raw).payload.transaction_id ?? "hb"),
    [
      "A",
      "C",
      "hb",
    ],
  );
  const retry = calls.find((c) => c.op === "retry")!;
  assert.equal(JSON.parse(retry.raw).payload.transaction_id, "BAD");
  assert.equal(retry.countAttempt, true);
  assert.ok(
    retry.delay! >= 50 && retry.delay! <= 100,
    `first retry backs off by about the base: ${retry.delay}`,
  );
});

Deno.test("after the last attempt a failing job is dead-lettered with its last error", async () => {
  const { queue, calls } = recordingQueue();
  const store = fakeStore({ recordHeartbeats: () => Promise.reject(new Error("disk full")) });
  await processBatch(options(queue, store), [lease(job("heartbeat", { temperature: 1 }), 2)]);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.op, "dead");
  assert.equal(calls[0]!.reason, "heartbeat job failed 3 times; last error: disk full");
});

Deno.test("while the database is unreachable jobs are retried without using up attempts", async () => {
  const { queue, calls } = recordingQueue();
  const store = fakeStore({
    recordHeartbeats: () => Promise.reject(new Error("connect ECONNREFUSED")),
    ping: () => Promise.reject(new Error("connect ECONNREFUSED")),
  });
  const pause = await processBatch(options(queue, store), [lease(job("heartbeat", { temperature: 1 }), 2)]);
  assert.ok(pause > 0, "the worker pauses");
  assert.deepEqual(calls.map((c) => [c.op, c.countAttempt]), [["retry", false]]);
});

Deno.test("invalid jobs are dead-lettered at once with a reason that names what failed", async () => {
  const { queue, calls } = recordingQueue();
  await processBatch(options(queue, fakeStore()), [
    lease("not json"),
    lease(job("heartbeat", { temperature: "hot" })),
    lease(job("teleport", {})),
    lease(JSON.stringify({ type: "heartbeat", serial_no: "bad serial", payload: {}, received_at: "x" })),
  ]);
  const reasons = calls.map((c) => `${c.op}: ${c.reason}`);
  assert.equal(reasons.length, 4);
  assert.match(reasons[0]!, /^dead: Cannot parse job: /);
  assert.match(reasons[1]!, /^dead: Cannot parse heartbeat from M-001: temperature: .*number/);
  assert.match(reasons[2]!, /^dead: No handler for job type "teleport" from M-001/);
  assert.match(reasons[3]!, /^dead: Cannot parse job: serial_no: is not a valid serial_no/);
});

Deno.test("heartbeats of one batch reach the store together, validated and typed", async () => {
  const { queue } = recordingQueue();
  const seen: unknown[] = [];
  const store = fakeStore({
    recordHeartbeats: (rows) => {
      seen.push(rows.map((r) => [r.serialNo, r.temperature, r.currentPage, r.receivedAt.toISOString()]));
      return Promise.resolve();
    },
  });
  await processBatch(options(queue, store), [
    lease(job("heartbeat", { temperature: 20, current_page: 2 }, "A")),
    lease(job("heartbeat", { temperature: 21 }, "B")),
  ]);
  assert.deepEqual(seen, [[
    ["A", 20, 2, "2026-04-14T01:00:00.000Z"],
    ["B", 21, null, "2026-04-14T01:00:00.000Z"],
  ]]);
});

/** An error shaped like mysql2's (behind Drizzle's wrapper) when the database cannot be reached. */
function unreachable(code: string): Error {
  const driver = Object.assign(new Error(`connect ${code}`), { code, fatal: true });
  return new Error("Failed query: select 1", { cause: driver });
}

Deno.test("a connection error is transient even if the database answers again when it is handled", async () => {
  const { queue, calls } = recordingQueue();
  const store = fakeStore({ recordHeartbeats: () => Promise.reject(unreachable("ETIMEDOUT")) });
  const pause = await processBatch(options(queue, store), [lease(job("heartbeat", { temperature: 1 }), 2)]);
  assert.ok(pause > 0, "the worker pauses");
  assert.deepEqual(calls.map((c) => [c.op, c.countAttempt]), [["retry", false]]);
});

Deno.test("an unreachable database fails the batch at once, without trying each job alone", async () => {
  const { queue, calls } = recordingQueue();
  let attempts = 0;
  const store = fakeStore({
    recordTransactions: () => {
      attempts++;
      return Promise.reject(unreachable("PROTOCOL_CONNECTION_LOST"));
    },
  });
  const tx = (id: string) =>
    lease(job("transaction", { transaction_id: id, slot_no: 1, quantity: 1, amount: 1 }));
  await processBatch(options(queue, store), [tx("A"), tx("B"), tx("C")]);
  assert.equal(attempts, 1, "one attempt for the whole batch");
  assert.deepEqual(calls.map((c) => [c.op, c.countAttempt]), [
    ["retry", false],
    ["retry", false],
    ["retry", false],
  ]);
});

Deno.test("the job types of one batch are written side by side, and their outcomes keep the type order", async () => {
  const { queue, calls } = recordingQueue();
  const started: string[] = [];
  let transactionsStartedFirst = false;
  const store = fakeStore({
    recordHeartbeats: async () => {
      started.push("heartbeat");
      await Promise.resolve();
      // Side by side: the transactions' write has begun before the heartbeats' has finished.
      transactionsStartedFirst = started.includes("transaction");
    },
    recordTransactions: (rows) => {
      started.push("transaction");
      return Promise.resolve({ applied: [...rows], duplicates: [] });
    },
  });
  const hb = job("heartbeat", { temperature: 1 });
  const tx = job("transaction", { transaction_id: "T1", slot_no: 1, amount: 5 });
  await processBatch(options(queue, store), [lease(hb), lease(tx)]);
  assert.deepEqual(started, ["heartbeat", "transaction"]);
  assert.ok(transactionsStartedFirst, "the transactions waited for the heartbeats");
  assert.deepEqual(calls, [{ op: "ack", raw: hb }, { op: "ack", raw: tx }]);
});

Deno.test("a job the database refuses as data is dead-lettered at once; the others in its batch land", async () => {
  const { queue, calls } = recordingQueue();
  const refused = Object.assign(new Error("Out of range value for column 'slot_no'"), {
    code: "ER_WARN_DATA_OUT_OF_RANGE",
  });
  const store = fakeStore({
    recordTransactions: (rows) => {
      if (rows.some((r) => r.transactionId === "DATA")) return Promise.reject(refused);
      return Promise.resolve({ applied: [...rows], duplicates: [] });
    },
  });
  const tx = (id: string) => job("transaction", { transaction_id: id, slot_no: 1, quantity: 1, amount: 1 });
  await processBatch(options(queue, store), [lease(tx("A")), lease(tx("DATA")), lease(tx("C"))]);
  assert.deepEqual(
    calls.filter((c) => c.op === "ack").map((c) => JSON.parse(c.raw).payload.transaction_id),
    ["A", "C"],
  );
  assert.deepEqual(calls.filter((c) => c.op === "retry"), [], "never retried");
  const dead = calls.filter((c) => c.op === "dead");
  assert.equal(dead.length, 1);
  assert.match(
    dead[0]!.reason!,
    /The database refuses transaction from M-001: Out of range value for column 'slot_no'/,
  );
});

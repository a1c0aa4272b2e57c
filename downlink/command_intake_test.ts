import assert from "node:assert/strict";
import { newCommandRecord } from "../db/command_record.ts";
import type { NewCommand, Store } from "../db/store.ts";
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from "../lib/errors.ts";
import type { Lease, ReliableQueue } from "../queue/reliable_queue.ts";
import { CommandHandoff } from "./command_handoff.ts";
import { CommandIntake } from "./command_intake.ts";

function fakeStore(machines: Set<string>) {
  const lookups: string[] = [];
  const store = {
    machineExists: (s: string) => (lookups.push(s), Promise.resolve(machines.has(s))),
    createCommand: (c: NewCommand) => Promise.resolve({ command: newCommandRecord(c), created: true }),
    createCommands: (cs: NewCommand[]) =>
      Promise.resolve(cs.map((c) => ({ command: newCommandRecord(c), created: true }))),
  } as unknown as Store;
  return { store, lookups };
}

Deno.test("command intake: a machine found once is not looked up again; an unknown one is, every time", async () => {
  const { store, lookups } = fakeStore(new Set(["M-001"]));
  const pushed: string[] = [];
  const intake = new CommandIntake({
    store,
    queue: { push: (...raws: string[]) => (pushed.push(...raws), Promise.resolve()) },
    defaultTtlSeconds: 60,
  });
  const request = (serialNo: string) => ({ serialNo, command: "dispense", payload: { slot_no: 1 } });
  await intake.accept(request("M-001"));
  await intake.accept(request("M-001"));
  await assert.rejects(intake.accept(request("M-404")), NotFoundError);
  await assert.rejects(intake.accept(request("M-404")), NotFoundError);
  assert.deepEqual(lookups, ["M-001", "M-404", "M-404"]);
  assert.equal(pushed.length, 2);
  assert.equal(JSON.parse(pushed[0]!).target, "M-001");
});

/** A store whose first batch insert waits for `release()`, remembering every call. */
function recordingStore(options: { existing?: NewCommand[]; failBatch?: Error } = {}) {
  const rows = new Map((options.existing ?? []).map((c) => [c.messageId, newCommandRecord(c)]));
  const batches: string[][] = [];
  const freshFlags: boolean[] = [];
  const singles: string[] = [];
  const failed: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const store = {
    machineExists: () => Promise.resolve(true),
    createCommands: async (cs: NewCommand[], hint?: { fresh?: boolean }) => {
      batches.push(cs.map((c) => c.messageId));
      freshFlags.push(hint?.fresh === true);
      if (batches.length === 1) await gate;
      if (options.failBatch && cs.length > 1) throw options.failBatch;
      return cs.map((c) => {
        const found = rows.get(c.messageId);
        if (found) return { command: found, created: false };
        rows.set(c.messageId, newCommandRecord(c));
        return { command: rows.get(c.messageId)!, created: true };
      });
    },
    createCommand: (c: NewCommand) => {
      singles.push(c.messageId);
      if (c.payload.bad) {
        return Promise.reject(
          Object.assign(new Error("Data too long for column 'payload'"), { code: "ER_DATA_TOO_LONG" }),
        );
      }
      return Promise.resolve({ command: newCommandRecord(c), created: true });
    },
    finishQueuedCommand: (id: string) => (failed.push(id), Promise.resolve(true)),
  } as unknown as Store;
  return {
    store,
    batches,
    freshFlags,
    singles,
    failed,
    release,
  };
}

function recordingQueue(fail?: Error) {
  const pushes: string[][] = [];
  return {
    pushes,
    push: (...raws: string[]) => {
      pushes.push(raws.map((r) => JSON.parse(r).message_id));
      return fail ? Promise.reject(fail) : Promise.resolve();
    },
  };
}

const ask = (messageId: string, payload: Record<string, unknown> = { slot_no: 1 }) => ({
  serialNo: "M-001",
  command: "dispense",
  payload,
  messageId,
});

Deno.test("command intake: requests arriving together are stored in one batch and pushed in one RPUSH, in order", async () => {
  const s = recordingStore();
  const queue = recordingQueue();
  const intake = new CommandIntake({ store: s.store, queue, defaultTtlSeconds: 60, maxInFlight: 1 });
  const first = intake.accept(ask("A"));
  await new Promise((r) => setTimeout(r, 0));
  const rest = ["B", "C", "D"].map((id) => intake.accept(ask(id)));
  await new Promise((r) => setTimeout(r, 0));
  s.release();
  await first;
  const results = await Promise.all(rest);
  assert.deepEqual(s.batches, [["A"], ["B", "C", "D"]]);
  assert.deepEqual(queue.pushes, [["A"], ["B", "C", "D"]]);
  assert.deepEqual(results.map((r) => [r.command.messageId, r.created]), [["B", true], ["C", true], [
    "D",
    true,
  ]]);
});

Deno.test("command intake: in one batch, a reused message_id with another payload is a conflict for that request only", async () => {
  const s = recordingStore({
    existing: [{
      ...ask("OLD"),
      source: "api",
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 60_000),
    }],
  });
  const queue = recordingQueue();
  const intake = new CommandIntake({ store: s.store, queue, defaultTtlSeconds: 60, maxInFlight: 1 });
  const all = Promise.allSettled([
    intake.accept(ask("NEW1")),
    intake.accept(ask("OLD", { slot_no: 9 })),
    intake.accept(ask("OLD")), // the same request again: accepted, pushed again (the downlink publishes it once)
  ]);
  s.release();
  const [a, b, c] = await all;
  assert.equal(a.status, "fulfilled");
  assert.ok(b.status === "rejected" && b.reason instanceof ConflictError);
  assert.ok(c.status === "fulfilled" && c.value.created === false);
  assert.deepEqual(queue.pushes.flat(), ["NEW1", "OLD"]);
});

Deno.test("command intake: a failed push marks every command of the batch failed and answers 503 to each", async () => {
  const s = recordingStore();
  const queue = recordingQueue(new Error("redis down"));
  const intake = new CommandIntake({ store: s.store, queue, defaultTtlSeconds: 60, maxInFlight: 1 });
  const all = Promise.allSettled(["A", "B"].map((id) => intake.accept(ask(id))));
  s.release();
  const settled = await all;
  assert.ok(settled.every((r) => r.status === "rejected" && r.reason instanceof UnavailableError));
  assert.deepEqual(s.failed.sort(), ["A", "B"]);
});

Deno.test("command intake: a batch the database rejects is retried one by one, so one bad command fails alone (422)", async () => {
  const s = recordingStore({ failBatch: new Error("Data too long for column 'payload'") });
  const queue = recordingQueue();
  const intake = new CommandIntake({ store: s.store, queue, defaultTtlSeconds: 60, maxInFlight: 1 });
  const first = intake.accept(ask("A"));
  await new Promise((r) => setTimeout(r, 0));
  const rest = Promise.allSettled([intake.accept(ask("B")), intake.accept(ask("BAD", { bad: true }))]);
  s.release();
  await first;
  const [b, bad] = await rest;
  assert.equal(b.status, "fulfilled");
  assert.equal(bad.status, "rejected");
  assert.ok(bad.reason instanceof ValidationError, "the database refusing the data is the client's 422");
  assert.match(bad.reason.message, /cannot store this command: Data too long for column 'payload'/);
  assert.deepEqual(s.singles, ["B", "BAD"]);
  assert.deepEqual(queue.pushes, [["A"], ["B"]]);
});

Deno.test("command intake: a batch skips the lookup of stored commands only when every message_id was made here", async () => {
  const s = recordingStore();
  const queue = recordingQueue();
  const intake = new CommandIntake({ store: s.store, queue, defaultTtlSeconds: 60, maxInFlight: 1 });
  const generated = { serialNo: "M-001", command: "ping", payload: {} };
  const first = intake.accept(generated);
  await new Promise((r) => setTimeout(r, 0));
  const mixed = [intake.accept(generated), intake.accept(ask("CLIENT-1"))];
  await new Promise((r) => setTimeout(r, 0));
  s.release();
  await Promise.all([first, ...mixed]);
  await intake.accept(generated);
  assert.deepEqual(s.batches.map((b) => b.length), [1, 2, 1]);
  assert.deepEqual(s.freshFlags, [true, false, true]);
});

Deno.test("command intake: with the downlink's hand-off ready, fresh commands are leased while stored, not pushed", async () => {
  const { store } = fakeStore(new Set(["M-001"]));
  const leased: { raws: readonly string[]; append?: boolean }[] = [];
  const consumer = {
    pushLeased: (raws: readonly string[], _fence?: unknown, o?: { append?: boolean }) => {
      leased.push({ raws, append: o?.append });
      return Promise.resolve(raws.map((raw): Lease => ({ raw, attempts: 0, ref: raw })));
    },
    ack: () => Promise.resolve(),
  } as unknown as ReliableQueue;
  const handoff = new CommandHandoff();
  handoff.attach(consumer);
  const pushed: string[] = [];
  const intake = new CommandIntake({
    store,
    queue: { push: (...raws: string[]) => (pushed.push(...raws), Promise.resolve()) },
    handoff,
    defaultTtlSeconds: 60,
  });
  const { command, created } = await intake.accept({ serialNo: "M-001", command: "dispense", payload: {} });
  assert.equal(created, true);
  assert.deepEqual(pushed, [], "no plain push");
  assert.equal(leased.length, 1);
  assert.equal(leased[0]!.append, false, "never appended before its row is stored");
  assert.deepEqual(JSON.parse(leased[0]!.raws[0]!), {
    target: "M-001",
    command: "dispense",
    payload: {},
    message_id: command.messageId,
    origin: "api",
  });
  const batch = handoff.take(10)!;
  assert.equal(batch.records.get(leased[0]!.raws[0]!)?.messageId, command.messageId);

  // A client's own message_id may name a stored command: stored first, then handed over.
  await intake.accept({ serialNo: "M-001", command: "dispense", payload: {}, messageId: "MSG_client_1" });
  assert.equal(leased.length, 2);
  assert.equal(leased[1]!.append, undefined, "the plain hand-off, after the row");
});

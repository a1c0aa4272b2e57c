/**
 * @module jobs_stores_test
 * The worker's job handlers on each store: contract job JSON goes through the queue, the dispatcher
 * and `processBatch` (the worker's ack / retry / dead-letter rules) into MariaDB and into SQLite, with
 * the same result. Guards against a handler relying on one dialect's behaviour.
 */
import assert from "node:assert/strict";
import { JOB_HANDLERS } from "../app/gateway.ts";
import { encodeBridgePayload } from "../contract/incoming_job.ts";
import { Dispatcher } from "../jobs/dispatcher.ts";
import type { Alert } from "../jobs/job_handler.ts";
import { processBatch } from "../jobs/worker.ts";
import { SqliteQueue } from "../queue/sqlite/sqlite_queue.ts";
import { STORE_BACKENDS } from "./store_backends.ts";
import { uniqueId } from "./support.ts";

const job = (type: string, serialNo: string, payload: Record<string, unknown>, receivedAt: string) =>
  encodeBridgePayload({ type, serial_no: serialNo, payload, received_at: receivedAt });

for (const backend of STORE_BACKENDS) {
  Deno.test(`jobs on the ${backend.dialect} store: heartbeat, error, transaction (redelivered), invalid`, async () => {
    const fixture = await backend.open();
    const db = SqliteQueue.openDatabase(":memory:");
    const queue = new SqliteQueue(db, "mqtt_incoming_jobs", { consumerId: "test:worker:0" });
    try {
      const { store } = fixture;
      const alerts: Alert[] = [];
      const options = {
        queue,
        dispatcher: new Dispatcher(JOB_HANDLERS),
        ctx: { store, alert: (a: Alert) => alerts.push(a) },
        store,
        batchSize: 100,
        maxAttempts: 3,
        retryBaseMs: 10,
        retryMaxMs: 50,
      };
      const serial = uniqueId("M-");
      const tx = { transaction_id: uniqueId("T"), slot_no: 5, quantity: 2, amount: 35 };
      await queue.push(
        job(
          "heartbeat",
          serial,
          { current_page: 1, temperature: 25.5, firmware: "1.0" },
          "2026-04-14T09:00:00+08:00",
        ),
        job("heartbeat", serial, { current_page: 2, temperature: 26 }, "2026-04-14T09:00:05+08:00"),
        job(
          "error",
          serial,
          { code: "E101", message: "door open", level: "warning" },
          "2026-04-14T09:00:01+08:00",
        ),
        job("transaction", serial, tx, "2026-04-14T09:00:02+08:00"),
        job("transaction", serial, tx, "2026-04-14T09:00:02+08:00"),
        job("heartbeat", serial, { temperature: "hot" }, "2026-04-14T09:00:03+08:00"),
      );
      const leases = await queue.lease(100, 0);
      assert.equal(leases.length, 6);
      assert.equal(await processBatch(options, leases), 0, "no database outage");
      // The same transaction once more, in a later batch: a QoS 1 redelivery.
      await queue.push(job("transaction", serial, tx, "2026-04-14T09:00:09+08:00"));
      await processBatch(options, await queue.lease(100, 0));

      const m = await store.getMachine(serial);
      assert.ok(m);
      assert.equal(m.registered, false);
      assert.equal(m.currentPage, 2, "the newer heartbeat wins");
      assert.equal(m.temperature, 26);
      assert.equal(m.lastHeardAt?.toISOString(), "2026-04-14T01:00:05.000Z");
      assert.deepEqual(m.slots, [{ slotNo: 5, stock: -2 }], "stock down by the quantity, once");
      assert.deepEqual(m.recentErrors.map((e) => [e.code, e.level, e.message]), [[
        "E101",
        "warning",
        "door open",
      ]]);
      assert.deepEqual(alerts.map((a) => [a.serialNo, a.code]), [[serial, "E101"]]);
      const rows = await fixture.rows("SELECT transaction_id FROM transactions WHERE serial_no = ?", [
        serial,
      ]);
      assert.deepEqual(rows.map((r) => r.transaction_id), [tx.transaction_id]);

      const depth = await queue.depth();
      assert.deepEqual(depth, { ready: 0, processing: 0, delayed: 0, dead: 1 });
      const [dead] = await queue.deadLetters();
      assert.match(dead!.reason, /Cannot parse heartbeat from .*temperature/);
    } finally {
      await queue.close();
      db.close();
      await fixture.cleanup();
    }
  });
}

/** Sets up the worker on one store with a queue of its own. */
async function jobRig(backend: (typeof STORE_BACKENDS)[number]) {
  const fixture = await backend.open();
  const db = SqliteQueue.openDatabase(":memory:");
  const queue = new SqliteQueue(db, "mqtt_incoming_jobs", { consumerId: "test:worker:0" });
  const options = {
    queue,
    dispatcher: new Dispatcher(JOB_HANDLERS),
    ctx: { store: fixture.store, alert: () => {} },
    store: fixture.store,
    batchSize: 100,
    maxAttempts: 5,
    retryBaseMs: 10,
    retryMaxMs: 50,
  };
  return {
    fixture,
    queue,
    options,
    async close() {
      await queue.close();
      db.close();
      await fixture.cleanup();
    },
  };
}

const deep = (levels: number): Record<string, unknown> => levels <= 1 ? { x: 1 } : { x: deep(levels - 1) };

for (const backend of STORE_BACKENDS) {
  Deno.test(`jobs on the ${backend.dialect} store: what the database cannot hold is dead-lettered at once, beside good jobs that land`, async () => {
    const rig = await jobRig(backend);
    try {
      const serial = uniqueId("M-");
      const at = "2026-04-14T09:00:00+08:00";
      const good = (id: string) =>
        job("transaction", serial, { transaction_id: id, slot_no: 1, amount: 2 }, at);
      const bad: [string, RegExp][] = [
        [job("transaction", serial, { transaction_id: "B1", slot_no: 2147483648, amount: 1 }, at), /slot_no/],
        [job("transaction", serial, { transaction_id: "B2", slot_no: 1, amount: 1e10 }, at), /amount/],
        [
          job("transaction", serial, { transaction_id: "B3\ud800", slot_no: 1, amount: 1 }, at),
          /transaction_id: contains a lone surrogate/,
        ],
        [
          job("heartbeat", serial, { temperature: 20, note: "\ud800" }, at),
          /note: contains a lone surrogate/,
        ],
        [job("heartbeat", serial, { current_page: 2147483648 }, at), /current_page/],
        [job("heartbeat", serial, { temperature: 20, tree: deep(40) }, at), /nested deeper than 31 levels/],
        [
          job("error", serial, { code: "E1", message: "é".repeat(40_000) }, at),
          /message: is longer than 65535 bytes/,
        ],
        [
          job("command_ack", serial, { message_id: "MSG_\udc00", status: "ok" }, at),
          /message_id: contains a lone surrogate/,
        ],
        [job("heartbeat", serial, { temperature: 20 }, "0099-04-14T09:00:00+08:00"), /received_at/],
      ];
      await rig.queue.push(good("G1"), ...bad.map(([raw]) => raw), good("G2"));
      await processBatch(rig.options, await rig.queue.lease(100, 0));
      const m = await rig.fixture.store.getMachine(serial);
      assert.deepEqual(m?.slots, [{ slotNo: 1, stock: -2 }], "both good sales landed");
      assert.deepEqual(await rig.queue.depth(), { ready: 0, processing: 0, delayed: 0, dead: bad.length });
      const letters = await rig.queue.deadLetters(100);
      for (const [raw, reason] of bad) {
        const letter = letters.find((l) => l.job === raw);
        assert.ok(letter, `dead-lettered: ${raw.slice(0, 80)}`);
        assert.match(letter.reason, reason);
        assert.equal(letter.attempts, 1, "one attempt, counted");
      }
    } finally {
      await rig.close();
    }
  });

  Deno.test(`jobs on the ${backend.dialect} store: the same transaction_id from two machines, and exact spellings, are all sales`, async () => {
    const rig = await jobRig(backend);
    try {
      const upper = uniqueId("U-M");
      const lower = upper.toLowerCase();
      const at = "2026-04-14T09:00:00+08:00";
      const sale = (serial: string, id: string, slot = 1) =>
        job("transaction", serial, { transaction_id: id, slot_no: slot, quantity: 1, amount: 2 }, at);
      const ids = ["T202604140001", "pad", "pad ", "cafe", "café", "case", "CASE"];
      await rig.queue.push(
        ...ids.map((id) => sale(upper, id)),
        sale(lower, "T202604140001", 2),
        sale(upper, "T202604140001"), // a redelivery: counts once
      );
      await processBatch(rig.options, await rig.queue.lease(100, 0));
      await rig.queue.push(sale(lower, "T202604140001", 2)); // a later redelivery
      await processBatch(rig.options, await rig.queue.lease(100, 0));
      assert.deepEqual((await rig.fixture.store.getMachine(upper))?.slots, [{
        slotNo: 1,
        stock: -ids.length,
      }]);
      assert.deepEqual((await rig.fixture.store.getMachine(lower))?.slots, [{ slotNo: 2, stock: -1 }]);
      assert.equal((await rig.queue.depth()).dead, 0, "no spelling dead-letters");
      const rows = await rig.fixture.rows(
        "SELECT COUNT(*) AS n FROM transactions WHERE serial_no IN (?, ?)",
        [
          upper,
          lower,
        ],
      );
      assert.equal(Number(rows[0]!.n), ids.length + 1);
    } finally {
      await rig.close();
    }
  });
}

/**
 * @module store_test
 * One conformance suite for every {@link Store}: each case runs on MysqlStore (a fresh MariaDB
 * database) and on SqliteStore (a temporary file), so the embedded store cannot drift from the
 * production one. Also checks that both dialects' migrations create the same tables and columns.
 */
import assert from "node:assert/strict";
import type { RowDataPacket } from "mysql2/promise";
import { mysqlBackend, STORE_BACKENDS, type StoreBackend } from "../tests/store_backends.ts";
import { uniqueId } from "../tests/support.ts";
import type { MysqlStore } from "./mysql/mysql_store.ts";
import { SQL_INT_MAX } from "../contract/storable.ts";
import type { HeartbeatRecord, Store, TransactionRecord } from "./store.ts";

const at = (iso: string) => new Date(iso);

function heartbeat(serialNo: string, time: string, temperature: number | null, page: number | null) {
  const payload: Record<string, unknown> = { current_page: page, temperature, sent: time };
  return {
    serialNo,
    receivedAt: at(time),
    temperature,
    currentPage: page,
    payload,
  } satisfies HeartbeatRecord;
}

function sale(transactionId: string, serialNo: string, slotNo: number, quantity = 1): TransactionRecord {
  return {
    transactionId,
    serialNo,
    slotNo,
    quantity,
    amount: 35.5,
    receivedAt: at("2026-04-14T01:00:00Z"),
    payload: { transaction_id: transactionId, slot_no: slotNo, quantity, amount: 35.5 },
  };
}

async function stockOf(store: Store, serialNo: string): Promise<Record<number, number>> {
  const detail = await store.getMachine(serialNo);
  return Object.fromEntries((detail?.slots ?? []).map((s) => [s.slotNo, s.stock]));
}

type Case = (store: Store, fixture: Awaited<ReturnType<StoreBackend["open"]>>) => Promise<void>;

const cases: Record<string, Case> = {
  "migrate again changes nothing": async (store) => {
    await store.migrate();
    await store.ping();
    await store.recordHeartbeats([heartbeat("M-1", "2026-04-14T01:00:00Z", 20, 1)]);
    await store.migrate();
    assert.equal((await store.listMachines({ limit: 10, offset: 0 })).total, 1);
  },

  "a heartbeat from an unknown serial creates an unregistered machine with its fields": async (store) => {
    const serial = uniqueId("M-");
    const hb = heartbeat(serial, "2026-04-14T01:00:00.123Z", 25.5, 1);
    hb.payload.firmware = "1.2.3";
    await store.recordHeartbeats([hb]);
    const m = await store.getMachine(serial);
    assert.ok(m);
    assert.equal(m.serialNo, serial);
    assert.equal(m.registered, false);
    assert.equal(m.name, null);
    assert.equal(m.temperature, 25.5);
    assert.equal(m.currentPage, 1);
    assert.equal(m.lastHeardAt?.toISOString(), "2026-04-14T01:00:00.123Z", "milliseconds kept, UTC");
    assert.equal(m.lastHeartbeat?.firmware, "1.2.3", "extra fields kept");
    assert.ok(m.createdAt instanceof Date && !Number.isNaN(m.createdAt.getTime()));
    assert.deepEqual(m.slots, []);
    assert.deepEqual(m.recentErrors, []);
  },

  "heartbeats of one batch coalesce: the newest wins whatever the order": async (store) => {
    await store.recordHeartbeats([
      heartbeat("M-A", "2026-04-14T01:00:02Z", 22, 2),
      heartbeat("M-A", "2026-04-14T01:00:03Z", 23, 3),
      heartbeat("M-B", "2026-04-14T01:00:00Z", 30, 9),
      heartbeat("M-A", "2026-04-14T01:00:01Z", 21, 1),
    ]);
    const a = await store.getMachine("M-A");
    assert.equal(a?.temperature, 23);
    assert.equal(a?.currentPage, 3);
    assert.equal(a?.lastHeardAt?.toISOString(), "2026-04-14T01:00:03.000Z");
    assert.equal(a?.lastHeartbeat?.sent, "2026-04-14T01:00:03Z");
    assert.equal((await store.getMachine("M-B"))?.temperature, 30);
  },

  "an older heartbeat arriving late never moves last_heard_at back nor overwrites": async (store) => {
    await store.recordHeartbeats([heartbeat("M-1", "2026-04-14T01:00:10Z", 25, 4)]);
    await store.recordHeartbeats([heartbeat("M-1", "2026-04-14T01:00:05Z", 99, 9)]);
    let m = await store.getMachine("M-1");
    assert.equal(m?.lastHeardAt?.toISOString(), "2026-04-14T01:00:10.000Z");
    assert.equal(m?.temperature, 25);
    assert.equal(m?.currentPage, 4);
    assert.equal(m?.lastHeartbeat?.sent, "2026-04-14T01:00:10Z");
    // A newer one without temperature keeps the last known temperature.
    await store.recordHeartbeats([heartbeat("M-1", "2026-04-14T01:00:20Z", null, 5)]);
    m = await store.getMachine("M-1");
    assert.equal(m?.lastHeardAt?.toISOString(), "2026-04-14T01:00:20.000Z");
    assert.equal(m?.temperature, 25);
    assert.equal(m?.currentPage, 5);
    // The same time again (a redelivery) is applied: last wins.
    await store.recordHeartbeats([heartbeat("M-1", "2026-04-14T01:00:20Z", 26, 6)]);
    m = await store.getMachine("M-1");
    assert.equal(m?.temperature, 26);
    assert.equal(m?.currentPage, 6);
  },

  "machine logs are stored, newest first in the detail, and create unknown machines": async (store) => {
    const serial = uniqueId("M-");
    const log = (code: string, time: string) => ({
      serialNo: serial,
      receivedAt: at(time),
      code,
      level: "error",
      message: `failure ${code}`,
      payload: { code, message: `failure ${code}`, level: "error", extra: 1 },
    });
    await store.recordMachineLogs([log("E101", "2026-04-14T01:00:00Z"), log("E102", "2026-04-14T01:00:02Z")]);
    await store.recordMachineLogs([log("E103", "2026-04-14T01:00:01Z")]);
    const m = await store.getMachine(serial);
    assert.ok(m, "the unknown serial is recorded");
    assert.equal(m.registered, false);
    assert.equal(m.lastHeardAt, null);
    assert.deepEqual(m.recentErrors.map((e) => e.code), ["E102", "E103", "E101"]);
    assert.deepEqual(m.recentErrors[0], {
      code: "E102",
      level: "error",
      message: "failure E102",
      receivedAt: at("2026-04-14T01:00:02Z"),
    });
    await store.recordMachineLogs(
      Array.from({ length: 25 }, (_, i) => log(`X${i}`, `2026-04-15T00:00:${String(i).padStart(2, "0")}Z`)),
    );
    const again = await store.getMachine(serial);
    assert.equal(again?.recentErrors.length, 20, "the detail shows the 20 newest");
    assert.equal(again?.recentErrors[0]?.code, "X24");
  },

  "a transaction is recorded once and decrements stock once, however often it comes": async (store, f) => {
    const serial = uniqueId("M-");
    const t1 = uniqueId("T");
    const first = await store.recordTransactions([sale(t1, serial, 5), sale(t1, serial, 5)]);
    const key = { serialNo: serial, transactionId: t1 };
    assert.deepEqual(
      first,
      { applied: [key], duplicates: [key], emptySlots: [] },
      "no known stock: no alert",
    );
    const second = await store.recordTransactions([sale(t1, serial, 5)]);
    assert.deepEqual(second, { applied: [], duplicates: [key] });
    assert.deepEqual(await stockOf(store, serial), { 5: -1 });
    const rows = await f.rows(
      "SELECT transaction_id, slot_no, quantity, amount FROM transactions WHERE serial_no = ?",
      [
        serial,
      ],
    );
    assert.equal(rows.length, 1);
    assert.equal(Number(rows[0]!.amount), 35.5);
    const m = await store.getMachine(serial);
    assert.equal(m?.registered, false, "an unknown serial becomes an unregistered machine");

    // The back office restocks slot 5 with 1 item: a sale of 2 from it is recorded and reported as
    // from an empty slot; slot 6 (no row) and slot 5 once below 0 stay quiet.
    await f.exec("UPDATE machine_slots SET stock = 1 WHERE serial_no = ? AND slot_no = 5", [serial]);
    const [t2, t3, t4] = [uniqueId("T"), uniqueId("T"), uniqueId("T")];
    const third = await store.recordTransactions([sale(t2, serial, 5, 2), sale(t3, serial, 6)]);
    assert.deepEqual(third.emptySlots, [
      { serialNo: serial, slotNo: 5, stockBefore: 1, sold: 2, transactionIds: [t2] },
    ]);
    assert.equal(third.applied.length, 2, "recorded all the same");
    const fourth = await store.recordTransactions([sale(t4, serial, 5)]);
    assert.deepEqual(fourth.emptySlots, [], "already below 0: no second alert");
    assert.deepEqual(await stockOf(store, serial), { 5: -2, 6: -1 });
  },

  "setSlotStock sets absolute stock, adds missing slots, keeps the others; an unknown machine gets nothing":
    async (store, f) => {
      const serial = uniqueId("M-");
      const other = uniqueId("M-");
      assert.equal(await store.setSlotStock(serial, [{ slotNo: 1, stock: 20 }]), null);
      assert.equal(await store.machineExists(serial), false, "no machine made up");
      assert.deepEqual(await f.rows("SELECT slot_no FROM machine_slots WHERE serial_no = ?", [serial]), []);

      await store.recordHeartbeats([heartbeat(serial, "2026-04-14T01:00:00Z", 5, 1)]);
      await store.recordTransactions([sale(uniqueId("T"), serial, 2), sale(uniqueId("T"), other, 2)]);
      assert.deepEqual(await stockOf(store, serial), { 2: -1 }, "sold before anyone set the stock");
      const set = await store.setSlotStock(serial, [{ slotNo: 3, stock: 0 }, { slotNo: 1, stock: 20 }, {
        slotNo: 2,
        stock: 20,
      }]);
      assert.deepEqual(set, [{ slotNo: 1, stock: 20 }, { slotNo: 2, stock: 20 }, { slotNo: 3, stock: 0 }]);
      assert.deepEqual((await store.getMachine(serial))?.slots, set, "what getMachine shows");
      assert.deepEqual(await stockOf(store, other), { 2: -1 }, "another machine's slots untouched");

      // Sales count down from the stock set; once it is known, selling more than it is an alert.
      const t = uniqueId("T");
      await store.recordTransactions([sale(uniqueId("T"), serial, 2, 15)]);
      const over = await store.recordTransactions([sale(t, serial, 2, 6)]);
      assert.deepEqual(over.emptySlots, [{
        serialNo: serial,
        slotNo: 2,
        stockBefore: 5,
        sold: 6,
        transactionIds: [t],
      }]);

      // A partial count: only the slots named change; a slot given twice, the last wins.
      const again = await store.setSlotStock(serial, [
        { slotNo: 2, stock: 7 },
        { slotNo: 2, stock: 12 },
        { slotNo: 0, stock: SQL_INT_MAX },
      ]);
      assert.deepEqual(again, [
        { slotNo: 0, stock: SQL_INT_MAX },
        { slotNo: 1, stock: 20 },
        { slotNo: 2, stock: 12 },
        { slotNo: 3, stock: 0 },
      ]);
      assert.deepEqual(await store.setSlotStock(serial, []), again, "nothing to set: the slots as they are");
      const rows = await f.rows("SELECT COUNT(*) AS n FROM machine_slots WHERE serial_no = ?", [serial]);
      assert.equal(Number(rows[0]!.n), 4, "one row per slot, upserted");
    },

  "two machines' sales with the same transaction_id are two sales; each machine's redelivery counts once":
    async (store, f) => {
      // Machines number their own sales (T + date + counter): the same id from two machines is normal.
      const a = uniqueId("M-A");
      const b = uniqueId("M-B");
      const first = await store.recordTransactions([
        sale("T202604140001", a, 1, 2),
        sale("T202604140001", b, 1, 3),
      ]);
      assert.equal(first.applied.length, 2);
      assert.deepEqual(first.duplicates, []);
      // A later batch: each machine redelivers its own sale, and b's comes with a new one.
      const again = await store.recordTransactions([
        sale("T202604140001", b, 1, 3),
        sale("T202604140001", a, 1, 2),
        sale("T202604140002", b, 1, 1),
      ]);
      assert.deepEqual(again.applied, [{ serialNo: b, transactionId: "T202604140002" }]);
      assert.deepEqual(
        again.duplicates.map((k) => k.serialNo).sort(),
        [a, b].sort(),
      );
      assert.deepEqual(await stockOf(store, a), { 1: -2 });
      assert.deepEqual(await stockOf(store, b), { 1: -4 });
      const rows = await f.rows(
        "SELECT serial_no, transaction_id FROM transactions WHERE transaction_id = ? ORDER BY serial_no",
        ["T202604140001"],
      );
      assert.deepEqual(rows.map((r) => r.serial_no), [a, b].sort());
    },

  "identities are exact: case, accents and trailing spaces make different sales, machines and commands":
    async (store, f) => {
      const upper = uniqueId("U-M");
      const lower = upper.toLowerCase();
      // A sale of the lower-case machine never touches the upper-case one's stock.
      await store.recordTransactions([sale("T1", upper, 1, 5)]);
      await store.recordTransactions([sale("T1", lower, 1, 1)]);
      assert.deepEqual(await stockOf(store, upper), { 1: -5 });
      assert.deepEqual(await stockOf(store, lower), { 1: -1 });
      assert.equal((await store.getMachine(lower))?.serialNo, lower);
      // transaction_ids that a case-, accent- or pad-insensitive collation would merge.
      const ids = ["pad", "pad ", "cafe", "café", "case", "CASE"];
      const outcome = await store.recordTransactions(ids.map((id) => sale(id, upper, 2)));
      assert.deepEqual(outcome.applied.map((k) => k.transactionId), ids);
      assert.deepEqual(outcome.duplicates, []);
      const stored = await f.rows(
        "SELECT transaction_id FROM transactions WHERE serial_no = ? AND slot_no = 2",
        [
          upper,
        ],
      );
      assert.deepEqual(stored.map((r) => r.transaction_id).sort(), [...ids].sort());
      assert.deepEqual(await stockOf(store, upper), { 1: -5, 2: -6 });
      // Tokens: issuing one for the lower-case spelling leaves the upper-case machine's alone.
      await store.setMachineToken(upper, "a".repeat(64), at("2026-04-14T01:00:00Z"));
      await store.setMachineToken(lower, "b".repeat(64), at("2026-04-14T01:00:01Z"));
      assert.equal(await store.getMachineTokenHash(upper), "a".repeat(64));
      assert.equal(await store.getMachineTokenHash(lower), "b".repeat(64));
      await store.setMachineToken(upper, null, at("2026-04-14T01:00:02Z"));
      assert.equal(await store.getMachineTokenHash(upper), null);
      assert.equal(await store.getMachineTokenHash(lower), "b".repeat(64));
      // message_ids differing by case are two commands.
      const command = (messageId: string, serialNo: string) => ({
        messageId,
        serialNo,
        command: "dispense",
        payload: {},
        source: "api" as const,
        createdAt: at("2026-04-14T01:00:00Z"),
        expiresAt: at("2036-04-14T01:00:00Z"),
      });
      const m = uniqueId("MSG_x");
      assert.equal((await store.createCommand(command(m, upper))).created, true);
      assert.equal((await store.createCommand(command(m.toUpperCase(), lower))).created, true);
      assert.equal((await store.getCommand(m))?.serialNo, upper);
      assert.equal((await store.getCommand(m.toUpperCase()))?.serialNo, lower);
      assert.deepEqual((await store.listCommands(lower, 10)).map((c) => c.messageId), [m.toUpperCase()]);
      const outcomes = await store.recordCommandAcks([
        { messageId: m, serialNo: lower, status: "succeeded", detail: {}, at: at("2026-04-14T01:00:05Z") },
      ]);
      assert.deepEqual(
        outcomes,
        ["wrong_machine"],
        "an ack from another spelling of the target is not its ack",
      );
    },

  "stock goes down by quantity per slot and machine, in one batch": async (store) => {
    const a = uniqueId("M-");
    const b = uniqueId("M-");
    const outcome = await store.recordTransactions([
      sale("TA1", a, 1, 2),
      sale("TA2", a, 1, 1),
      sale("TA3", a, 2, 4),
      sale("TB1", b, 1, 1),
    ]);
    assert.deepEqual(outcome.applied.map((k) => k.transactionId).sort(), ["TA1", "TA2", "TA3", "TB1"]);
    assert.deepEqual(outcome.duplicates, []);
    assert.deepEqual(await stockOf(store, a), { 1: -3, 2: -4 });
    assert.deepEqual(await stockOf(store, b), { 1: -1 });
    await store.recordTransactions([sale("TA4", a, 2, 1)]);
    assert.deepEqual(await stockOf(store, a), { 1: -3, 2: -5 });
  },

  "concurrent batches with overlapping ids apply each transaction exactly once": async (store) => {
    const serial = uniqueId("M-");
    const ids = Array.from({ length: 12 }, (_, i) => `TC${i}-${serial}`);
    const batches = [ids.slice(0, 6), ids.slice(3, 9), ids.slice(6, 12), ids.slice(0, 12)]
      .map((part) => part.map((id) => sale(id, serial, 7)));
    const applied: string[] = [];
    const results = await Promise.allSettled(batches.map((batch) => store.recordTransactions(batch)));
    // A batch that lost a race may fail as a whole (rolled back): the worker retries it.
    for (const [i, result] of results.entries()) {
      const outcome = result.status === "fulfilled"
        ? result.value
        : await store.recordTransactions(batches[i]!);
      applied.push(...outcome.applied.map((k) => k.transactionId));
    }
    assert.deepEqual(applied.sort(), [...ids].sort(), "every id applied once in total");
    assert.deepEqual(await stockOf(store, serial), { 7: -12 });
  },

  "listMachines filters online / offline and pages in serial order": async (store) => {
    const p = uniqueId("L").toUpperCase();
    await store.recordHeartbeats([
      heartbeat(`${p}-A`, "2026-04-14T01:00:00Z", 1, 1),
      heartbeat(`${p}-B`, "2026-04-14T02:00:00Z", 1, 1),
      heartbeat(`${p}-C`, "2026-04-14T03:00:00Z", 1, 1),
    ]);
    await store.recordMachineLogs([{
      serialNo: `${p}-D`,
      receivedAt: at("2026-04-14T03:00:00Z"),
      code: "E1",
      level: "error",
      message: "",
      payload: {},
    }]);
    const all = await store.listMachines({ limit: 10, offset: 0 });
    assert.equal(all.total, 4);
    assert.deepEqual(all.items.map((m) => m.serialNo), [`${p}-A`, `${p}-B`, `${p}-C`, `${p}-D`]);
    const since = at("2026-04-14T02:00:00Z");
    const online = await store.listMachines({ limit: 10, offset: 0, online: true, onlineSince: since });
    assert.deepEqual(online.items.map((m) => m.serialNo), [`${p}-B`, `${p}-C`]);
    assert.equal(online.total, 2);
    const offline = await store.listMachines({ limit: 10, offset: 0, online: false, onlineSince: since });
    assert.deepEqual(offline.items.map((m) => m.serialNo), [`${p}-A`, `${p}-D`], "never heard = offline");
    assert.equal(offline.total, 2);
    const page = await store.listMachines({ limit: 2, offset: 1 });
    assert.deepEqual(page.items.map((m) => m.serialNo), [`${p}-B`, `${p}-C`]);
    assert.equal(page.total, 4);
    const c = all.items[2]!;
    assert.equal(c.lastHeardAt?.toISOString(), "2026-04-14T03:00:00.000Z");
    assert.equal(c.registered, false);
  },

  "getMachine of an unknown serial is null": async (store) => {
    assert.equal(await store.getMachine("NOPE"), null);
    assert.equal(await store.machineExists("NOPE"), false);
  },

  "machine tokens: set registers the machine, revoke clears the hash": async (store) => {
    const serial = uniqueId("M-");
    const hash = "a".repeat(64);
    assert.equal(await store.getMachineTokenHash(serial), null);
    assert.equal(await store.setMachineToken(serial, null, new Date()), false, "revoking an unknown machine");
    assert.equal(await store.setMachineToken(serial, hash, at("2026-04-14T01:00:00Z")), true);
    assert.equal(await store.machineExists(serial), true);
    assert.equal(await store.getMachineTokenHash(serial), hash);
    assert.equal((await store.getMachine(serial))?.registered, true);
    await store.recordHeartbeats([heartbeat(serial, "2026-04-14T01:00:00Z", 20, 1)]);
    assert.equal(await store.getMachineTokenHash(serial), hash, "a heartbeat keeps the token");
    const other = "b".repeat(64);
    assert.equal(await store.setMachineToken(serial, other, new Date()), true);
    assert.equal(await store.getMachineTokenHash(serial), other, "a new token replaces the old one");
    assert.equal(await store.setMachineToken(serial, null, new Date()), true);
    assert.equal(await store.getMachineTokenHash(serial), null);
    assert.equal(await store.machineExists(serial), true);
  },

  "commands: idempotent create, lifecycle transitions, never backwards": async (store) => {
    const serial = uniqueId("M-");
    const created = at("2026-04-14T01:00:00Z");
    const command = (messageId: string, expiresAt = at("2026-04-14T01:05:00Z")) => ({
      messageId,
      serialNo: serial,
      command: "dispense",
      payload: { slot_no: 5, transaction_id: "T1" },
      source: "api" as const,
      createdAt: created,
      expiresAt,
    });
    const first = await store.createCommand(command("MSG_1"));
    assert.equal(first.created, true);
    assert.deepEqual(
      { ...first.command },
      {
        messageId: "MSG_1",
        serialNo: serial,
        command: "dispense",
        payload: { slot_no: 5, transaction_id: "T1" },
        status: "queued",
        source: "api",
        detail: null,
        expiresAt: at("2026-04-14T01:05:00Z"),
        createdAt: created,
        sentAt: null,
        ackedAt: null,
        updatedAt: created,
      },
    );
    const again = await store.createCommand({ ...command("MSG_1"), command: "other" });
    assert.equal(again.created, false);
    assert.equal(again.command.command, "dispense", "the first one stays");

    const sentAt = at("2026-04-14T01:00:01Z");
    await store.markCommandsSent(["MSG_1"], sentAt);
    await store.markCommandsSent(["MSG_1"], at("2026-04-14T01:00:09Z"));
    let c = await store.getCommand("MSG_1");
    assert.equal(c?.status, "sent");
    assert.equal(c?.sentAt?.toISOString(), sentAt.toISOString(), "sent_at is set once");

    const ack = (status: "delivered" | "succeeded" | "failed", serialNo = serial) => ({
      messageId: "MSG_1",
      serialNo,
      status,
      detail: { status, note: "x" },
      at: at("2026-04-14T01:00:02Z"),
    });
    // One batch, applied in order: delivered then succeeded, and a late delivered is stale.
    assert.deepEqual(
      await store.recordCommandAcks([
        ack("delivered", "OTHER"),
        { ...ack("delivered"), messageId: "MSG_NONE" },
        ack("delivered"),
        ack("succeeded"),
        ack("delivered"),
      ]),
      ["wrong_machine", "unknown", "applied", "applied", "stale"],
    );
    assert.deepEqual(await store.recordCommandAcks([]), []);
    c = await store.getCommand("MSG_1");
    assert.equal(c?.status, "succeeded");
    assert.deepEqual(c?.detail, { status: "succeeded", note: "x" });
    assert.equal(c?.ackedAt?.toISOString(), "2026-04-14T01:00:02.000Z");
    assert.equal(await store.finishQueuedCommand("MSG_1", "failed", new Date()), false, "only from queued");

    await store.createCommand(command("MSG_2"));
    assert.equal(
      await store.finishQueuedCommand("MSG_2", "failed", at("2026-04-14T01:00:03Z"), { error: "offline" }),
      true,
    );
    c = await store.getCommand("MSG_2");
    assert.equal(c?.status, "failed");
    assert.deepEqual(c?.detail, { error: "offline" });

    await store.createCommand(command("MSG_3", at("2026-04-14T01:01:00Z")));
    await store.createCommand(command("MSG_4", at("2026-04-14T01:01:00Z")));
    await store.markCommandsSent(["MSG_4"], at("2026-04-14T01:00:30Z"));
    await store.createCommand(command("MSG_5", at("2026-04-14T02:00:00Z")));
    assert.equal(await store.expireCommands(at("2026-04-14T01:01:00Z")), 2);
    assert.equal((await store.getCommand("MSG_3"))?.status, "expired");
    assert.equal((await store.getCommand("MSG_5"))?.status, "queued");
    // The machine's real outcome beats the timeout, but only for a command that was published.
    assert.deepEqual(
      await store.recordCommandAcks([
        { ...ack("succeeded"), messageId: "MSG_4" },
        { ...ack("succeeded"), messageId: "MSG_3" },
      ]),
      ["applied", "stale"],
    );

    const list = await store.listCommands(serial, 10);
    assert.equal(list.length, 5);
    assert.deepEqual(list.map((x) => x.messageId), ["MSG_5", "MSG_4", "MSG_3", "MSG_2", "MSG_1"]);
    assert.equal((await store.listCommands(serial, 2)).length, 2);
    assert.equal(await store.getCommand("MSG_NONE"), null);
  },

  "commands: an ack received in the second of its PUBACK is not recorded before it (sent_at <= acked_at)":
    async (
      store,
    ) => {
      const serial = uniqueId("M-");
      await store.createCommand({
        messageId: "MSG_MS",
        serialNo: serial,
        command: "dispense",
        payload: {},
        source: "api",
        createdAt: at("2026-04-14T01:00:35.900Z"),
        expiresAt: at("2026-04-14T02:00:00Z"),
      });
      await store.markCommandsSent(["MSG_MS"], at("2026-04-14T01:00:36.188Z"));
      // The job's received_at is the contract's whole second: 36.000 for an ack that came at 36.4.
      const ack = { messageId: "MSG_MS", serialNo: serial, detail: {}, at: at("2026-04-14T01:00:36Z") };
      assert.deepEqual(await store.recordCommandAcks([{ ...ack, status: "succeeded" }]), ["applied"]);
      const c = await store.getCommand("MSG_MS");
      assert.equal(c?.sentAt?.toISOString(), "2026-04-14T01:00:36.188Z", "milliseconds kept");
      assert.equal(c?.ackedAt?.toISOString(), "2026-04-14T01:00:36.188Z");
      assert.ok(c!.updatedAt >= c!.sentAt!);
    },

  "commands: expiry ends every due command, however many, and leaves the rest": async (store) => {
    const serial = uniqueId("M-");
    const command = (messageId: string, expiresAt: Date) => ({
      messageId,
      serialNo: serial,
      command: "dispense",
      payload: {},
      source: "queue" as const,
      createdAt: at("2026-04-14T01:00:00Z"),
      expiresAt,
    });
    // More than one round of the MySQL store's expiry (1,000 rows each).
    const due = Array.from(
      { length: 2_345 },
      (_, i) => command(`${serial}_D${i}`, at("2026-04-14T01:01:00Z")),
    );
    await store.createCommands(due, { fresh: true });
    await store.createCommand(command(`${serial}_later`, at("2026-04-14T02:00:00Z")));
    await store.markCommandsSent(due.slice(0, 10).map((c) => c.messageId), at("2026-04-14T01:00:10Z"));
    assert.equal(await store.expireCommands(at("2026-04-14T01:01:00Z")), due.length);
    assert.equal(await store.expireCommands(at("2026-04-14T01:01:00Z")), 0, "nothing due twice");
    for (const c of [due[0]!, due[1_500]!, due.at(-1)!]) {
      assert.equal((await store.getCommand(c.messageId))?.status, "expired");
    }
    assert.equal((await store.getCommand(`${serial}_later`))?.status, "queued");
  },

  "commands: batch create keeps input order, reads stored ones, creates the rest once": async (store) => {
    const serial = uniqueId("M-");
    const created = at("2026-04-14T01:00:00Z");
    const command = (messageId: string, name = "dispense") => ({
      messageId,
      serialNo: serial,
      command: name,
      payload: { n: messageId },
      source: "queue" as const,
      createdAt: created,
      expiresAt: at("2026-04-14T01:05:00Z"),
    });
    const a = uniqueId("A_");
    const b = uniqueId("B_");
    const c = uniqueId("C_");
    await store.createCommand({ ...command(b, "stored-first"), source: "api" });
    await store.markCommandsSent([b], at("2026-04-14T01:00:01Z"));
    assert.deepEqual(await store.createCommands([]), []);
    const results = await store.createCommands([command(a), command(b), command(c), command(a, "again")]);
    assert.deepEqual(
      results.map((r) => [r.command.messageId, r.created, r.command.command, r.command.status]),
      [[a, true, "dispense", "queued"], [b, false, "stored-first", "sent"], [c, true, "dispense", "queued"], [
        a,
        false,
        "dispense",
        "queued",
      ]],
    );
    assert.deepEqual(results[0]!.command, await store.getCommand(a), "a created record is what was stored");
    const again = await store.createCommands([command(c), command(a)]);
    assert.deepEqual(again.map((r) => r.created), [false, false]);
    // `fresh` only skips the lookup: an id stored after all still comes back as the stored row.
    const d = uniqueId("D_");
    const fresh = await store.createCommands([command(d), command(b, "other")], { fresh: true });
    assert.deepEqual(
      fresh.map((r) => [r.command.messageId, r.created, r.command.command, r.command.status]),
      [[d, true, "dispense", "queued"], [b, false, "stored-first", "sent"]],
    );
    assert.equal((await store.getCommand(d))?.status, "queued");
    await store.markCommandsSent([a, c, a], at("2026-04-14T01:00:02Z"));
    assert.deepEqual(
      (await Promise.all([a, b, c].map((id) => store.getCommand(id)))).map((r) => [r?.status, r?.sentAt]),
      [
        ["sent", at("2026-04-14T01:00:02Z")],
        ["sent", at("2026-04-14T01:00:01Z")],
        ["sent", at("2026-04-14T01:00:02Z")],
      ],
    );
  },
};

for (const backend of STORE_BACKENDS) {
  for (const [title, run] of Object.entries(cases)) {
    Deno.test(`${backend.dialect} store: ${title}`, async () => {
      const fixture = await backend.open();
      try {
        await run(fixture.store, fixture);
      } finally {
        await fixture.cleanup();
      }
    });
  }
}

Deno.test("both dialects' migrations create the same tables, columns and indexes", async () => {
  const [mysql, sqlite] = await Promise.all(STORE_BACKENDS.map((b) => b.open()));
  try {
    const mysqlColumns = await mysql!.rows(
      `SELECT table_name AS t, column_name AS c FROM information_schema.columns
       WHERE table_schema = DATABASE() AND table_name <> '__drizzle_migrations'`,
    );
    const sqliteColumns = await sqlite!.rows(
      `SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p
       WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__drizzle_migrations'`,
    );
    const key = (rows: Record<string, unknown>[]) => rows.map((r) => `${r.t}.${r.c}`).sort();
    assert.ok(key(mysqlColumns).includes("machines.last_heard_at"));
    assert.deepEqual(key(sqliteColumns), key(mysqlColumns));

    const mysqlIndexes = await mysql!.rows(
      `SELECT DISTINCT index_name AS i FROM information_schema.statistics
       WHERE table_schema = DATABASE() AND index_name <> 'PRIMARY' AND table_name <> '__drizzle_migrations'`,
    );
    const sqliteIndexes = await sqlite!.rows(
      `SELECT name AS i FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`,
    );
    const names = (rows: Record<string, unknown>[]) => rows.map((r) => String(r.i)).sort();
    assert.ok(names(mysqlIndexes).includes("transactions_serial_no_transaction_id_unique"));
    assert.deepEqual(names(sqliteIndexes), names(mysqlIndexes));
  } finally {
    await Promise.all([mysql?.cleanup(), sqlite?.cleanup()]);
  }
});

Deno.test("mysql store: every pooled connection runs READ COMMITTED (no gap locks between batch writers)", async () => {
  const fixture = await mysqlBackend.open();
  try {
    const pool = (fixture.store as MysqlStore).pool;
    // Several connections at once, so more than the first one is checked.
    const levels = await Promise.all(Array.from({ length: 4 }, async () => {
      const conn = await pool.getConnection();
      try {
        await new Promise((r) => setTimeout(r, 20));
        const [rows] = await conn.query<RowDataPacket[]>("SELECT @@SESSION.tx_isolation AS level");
        return rows[0]!.level;
      } finally {
        conn.release();
      }
    }));
    assert.deepEqual(levels, Array(4).fill("READ-COMMITTED"));
  } finally {
    await fixture.cleanup();
  }
});

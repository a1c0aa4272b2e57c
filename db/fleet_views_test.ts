/**
 * @module fleet_views_test
 * The console's fleet reads give the same answers on MySQL and SQLite: paging, search, filters,
 * sorts, today's sales, recent alerts, low-stock slots, the error feed, sales per hour and last heard.
 */
import assert from "node:assert/strict";
import { STORE_BACKENDS } from "../tests/store_backends.ts";
import type { FleetQuery } from "./fleet_views.ts";

const at = (iso: string) => new Date(iso);

for (const backend of STORE_BACKENDS) {
  Deno.test(`fleet views (${backend.dialect}): page, search, filters, sorts and aggregates`, async () => {
    const { store, cleanup } = await backend.open();
    try {
      await store.recordHeartbeats([
        {
          serialNo: "VM-A",
          receivedAt: at("2026-04-14T10:00:00Z"),
          temperature: 5,
          currentPage: 1,
          payload: {},
        },
        {
          serialNo: "VM-B",
          receivedAt: at("2026-04-14T08:00:00Z"),
          temperature: 9,
          currentPage: 2,
          payload: {},
        },
        {
          serialNo: "other",
          receivedAt: at("2026-04-13T08:00:00Z"),
          temperature: 7,
          currentPage: 3,
          payload: {},
        },
      ]);
      const sale = (id: string, serialNo: string, slotNo: number, iso: string, amount: number) => ({
        transactionId: id,
        serialNo,
        slotNo,
        quantity: 1,
        amount,
        receivedAt: at(iso),
        payload: {},
      });
      await store.recordTransactions([
        sale("T1", "VM-A", 1, "2026-04-14T09:10:00Z", 30),
        sale("T2", "VM-A", 1, "2026-04-14T09:50:00Z", 25.5),
        sale("T3", "VM-B", 2, "2026-04-13T23:00:00Z", 10),
      ]);
      await store.recordMachineLogs([
        {
          serialNo: "VM-B",
          receivedAt: at("2026-04-14T09:30:00Z"),
          code: "E1",
          level: "error",
          message: "jam",
          payload: {},
        },
        {
          serialNo: "VM-B",
          receivedAt: at("2026-04-10T09:30:00Z"),
          code: "E0",
          level: "warning",
          message: "old",
          payload: {},
        },
      ]);
      const base: FleetQuery = {
        sort: "serial",
        desc: false,
        limit: 10,
        offset: 0,
        onlineSince: at("2026-04-14T09:00:00Z"),
        dayStart: at("2026-04-14T00:00:00Z"),
        alertSince: at("2026-04-13T10:00:00Z"),
        lowStock: 0,
      };
      const all = await store.views.fleet(base);
      assert.equal(all.total, 3);
      assert.deepEqual(all.items.map((m) => m.serialNo), ["other", "VM-A", "VM-B"]);
      const a = all.items.find((m) => m.serialNo === "VM-A")!;
      assert.deepEqual(
        [a.salesCount, a.salesAmount, a.alerts, a.lowSlots, a.temperature, a.currentPage],
        [2, 55.5, 0, 1, 5, 1],
      );
      assert.equal(a.lastHeardAt?.toISOString(), "2026-04-14T10:00:00.000Z");
      const b = all.items.find((m) => m.serialNo === "VM-B")!;
      assert.deepEqual([b.salesCount, b.alerts, b.lowSlots], [0, 1, 1]);

      const names = async (q: Partial<FleetQuery>) =>
        (await store.views.fleet({ ...base, ...q })).items.map((m) => m.serialNo);
      assert.deepEqual(await names({ search: "vm-" }), ["VM-A", "VM-B"]);
      assert.deepEqual(await names({ search: "%" }), [], "LIKE wildcards are literal");
      assert.deepEqual(await names({ filter: "online" }), ["VM-A"]);
      assert.deepEqual(await names({ filter: "offline" }), ["other", "VM-B"]);
      assert.deepEqual(await names({ filter: "alerting" }), ["VM-B"]);
      assert.deepEqual(await names({ filter: "low_stock" }), ["VM-A", "VM-B"]);
      assert.deepEqual(await names({ sort: "temperature", desc: true }), ["VM-B", "other", "VM-A"]);
      assert.deepEqual(await names({ sort: "sales", desc: true }), ["VM-A", "VM-B", "other"]);
      assert.deepEqual(await names({ sort: "last_heard" }), ["other", "VM-B", "VM-A"]);
      const page2 = await store.views.fleet({ ...base, limit: 2, offset: 2 });
      assert.deepEqual([page2.total, page2.items.length], [3, 1]);

      const sales = await store.views.sales("VM-A", 5);
      assert.deepEqual(sales.map((s) => [s.transactionId, s.amount]), [["T2", 25.5], ["T1", 30]]);
      assert.equal((await store.views.sales(null, 1))[0]!.transactionId, "T2");
      const feed = await store.views.logs(null, 10);
      assert.deepEqual(feed.map((l) => l.code), ["E1", "E0"]);
      assert.equal(feed[0]!.receivedAt.toISOString(), "2026-04-14T09:30:00.000Z");
      assert.deepEqual((await store.views.logs("VM-A", 10)).length, 0);
      const hours = await store.views.salesPerHour(at("2026-04-13T00:00:00Z"));
      assert.deepEqual(hours.map((h) => [h.hour.toISOString(), h.count, h.amount]), [
        ["2026-04-13T23:00:00.000Z", 1, 10],
        ["2026-04-14T09:00:00.000Z", 2, 55.5],
      ]);
      // What the presence sweep asks: exact serials, unknown ones left out, any number of them.
      const heard = await store.views.lastHeard(["VM-A", "vm-a", "nobody", ...Array(600).fill("VM-B")]);
      assert.deepEqual([...heard].map(([s, d]) => [s, d?.toISOString()]), [
        ["VM-A", "2026-04-14T10:00:00.000Z"],
        ["VM-B", "2026-04-14T08:00:00.000Z"],
      ]);
    } finally {
      await cleanup();
    }
  });
}

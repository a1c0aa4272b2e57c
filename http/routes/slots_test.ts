/**
 * @module slots_test
 * `PUT /api/v1/machines/{serial_no}/slots` behind the `/api/*` guard, on a real SQLite store: the
 * bearer token, validation (422 naming the field), 404 for a machine the gateway does not know, and
 * the machine's slots after the write.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../../db/sqlite/sqlite_store.ts";
import { guardApi } from "../middleware/api_guard.ts";
import { apiApp } from "../openapi.ts";
import { slotRoutes } from "./slots.ts";
import { onError } from "../error_handler.ts";

const TOKEN = "slots-test-api-token-0123456789";

async function harness() {
  const dir = await Deno.makeTempDir({ prefix: "gw_slots_" });
  const store = new SqliteStore({ path: join(dir, "gateway.db") });
  await store.migrate();
  const app = apiApp();
  app.onError(onError); // the root's error mapping (app/gateway.ts)
  guardApi(app, { apiToken: TOKEN, maxBodyBytes: 64 * 1024, maxInFlight: 8 });
  app.route("/", slotRoutes({ store }));
  const put = (serial: string, body: unknown, token: string | null = TOKEN) =>
    app.request(`/api/v1/machines/${serial}/slots`, {
      method: "PUT",
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return {
    store,
    put,
    async close() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("PUT …/slots: sets the stock, answers the machine's slots; the other slots are kept", async () => {
  const h = await harness();
  try {
    await h.store.recordHeartbeats([
      { serialNo: "M-S1", receivedAt: new Date(), temperature: 5, currentPage: 1, payload: {} },
    ]);
    await h.store.recordTransactions([{
      transactionId: "T1",
      serialNo: "M-S1",
      slotNo: 4,
      quantity: 2,
      amount: 30,
      receivedAt: new Date(),
      payload: {},
    }]);
    const res = await h.put("M-S1", { slots: [{ slot_no: 2, stock: 20 }, { slot_no: 1, stock: 15 }] });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      serial_no: "M-S1",
      slots: [{ slot_no: 1, stock: 15 }, { slot_no: 2, stock: 20 }, { slot_no: 4, stock: -2 }],
    });
    const again = await h.put("M-S1", { slots: [{ slot_no: 4, stock: 8 }] });
    assert.deepEqual((await again.json()).slots, [
      { slot_no: 1, stock: 15 },
      { slot_no: 2, stock: 20 },
      { slot_no: 4, stock: 8 },
    ]);
    assert.deepEqual((await h.store.getMachine("M-S1"))!.slots, [
      { slotNo: 1, stock: 15 },
      { slotNo: 2, stock: 20 },
      { slotNo: 4, stock: 8 },
    ]);
  } finally {
    await h.close();
  }
});

Deno.test("PUT …/slots: 401 without the token, 404 for an unknown machine, 422 for what cannot be stock", async () => {
  const h = await harness();
  try {
    await h.store.recordHeartbeats([
      { serialNo: "M-S2", receivedAt: new Date(), temperature: 5, currentPage: 1, payload: {} },
    ]);
    const body = { slots: [{ slot_no: 1, stock: 20 }] };
    for (const token of [null, "not-the-token-0123456789"]) {
      const res = await h.put("M-S2", body, token);
      assert.equal(res.status, 401);
      await res.body?.cancel();
    }
    const unknown = await h.put("M-NOPE", body);
    assert.equal(unknown.status, 404);
    assert.match((await unknown.json()).error.message, /No machine M-NOPE/);
    assert.equal(await h.store.machineExists("M-NOPE"), false, "no machine made up");

    const refused: [unknown, RegExp][] = [
      [{ slots: [] }, /slots/],
      [{}, /slots/],
      [{ slots: [{ slot_no: 1, stock: -1 }] }, /slots\.0\.stock/],
      [{ slots: [{ slot_no: 1, stock: 2_147_483_648 }] }, /slots\.0\.stock/],
      [{ slots: [{ slot_no: -1, stock: 1 }] }, /slots\.0\.slot_no/],
      [{ slots: [{ slot_no: 1.5, stock: 1 }] }, /slots\.0\.slot_no/],
      [{ slots: [{ slot_no: 1, stock: "20" }] }, /slots\.0\.stock/],
      [
        { slots: [{ slot_no: 3, stock: 1 }, { slot_no: 3, stock: 2 }] },
        /slots\.1\.slot_no: slot 3 is given twice/,
      ],
      [{ slots: Array.from({ length: 101 }, (_, i) => ({ slot_no: i, stock: 1 })) }, /slots/],
    ];
    for (const [bad, field] of refused) {
      const res = await h.put("M-S2", bad);
      assert.equal(res.status, 422, JSON.stringify(bad).slice(0, 80));
      const { error } = await res.json();
      assert.equal(error.code, "invalid_request");
      assert.match(error.message, field);
    }
    const notJson = await h.put("M-S2", "{slots");
    assert.equal(notJson.status, 400);
    await notJson.body?.cancel();
    const badSerial = await h.put("bad%20serial", body);
    assert.equal(badSerial.status, 422);
    await badSerial.body?.cancel();
    assert.deepEqual((await h.store.getMachine("M-S2"))!.slots, [], "nothing refused was written");
    const hundred = await h.put("M-S2", {
      slots: Array.from({ length: 100 }, (_, i) => ({ slot_no: i + 1, stock: 2_147_483_647 })),
    });
    assert.equal(hundred.status, 200);
    assert.equal((await hundred.json()).slots.length, 100);
  } finally {
    await h.close();
  }
});

import assert from "node:assert/strict";
import { SQL_INT_MAX } from "./storable.ts";
import { MAX_SLOTS_PER_WRITE, slotStockList } from "./slot_stock.ts";

Deno.test("slotStockList: slot_no and stock within an INT, no slot twice, 1 … 100 slots", () => {
  const list = slotStockList();
  const ok = (v: unknown) => list.safeParse(v).success;
  assert.ok(ok([{ slot_no: 0, stock: 0 }, { slot_no: SQL_INT_MAX, stock: SQL_INT_MAX }]));
  assert.ok(ok(Array.from({ length: MAX_SLOTS_PER_WRITE }, (_, i) => ({ slot_no: i + 1, stock: 20 }))));
  assert.ok(!ok([]), "nothing to set");
  assert.ok(!ok(Array.from({ length: MAX_SLOTS_PER_WRITE + 1 }, (_, i) => ({ slot_no: i, stock: 1 }))));
  assert.ok(!ok([{ slot_no: 1, stock: -1 }]), "stock below 0 is what sales do, not a setting");
  assert.ok(!ok([{ slot_no: -1, stock: 1 }]));
  assert.ok(!ok([{ slot_no: 1, stock: SQL_INT_MAX + 1 }]));
  assert.ok(!ok([{ slot_no: SQL_INT_MAX + 1, stock: 1 }]));
  assert.ok(!ok([{ slot_no: 1.5, stock: 1 }]));
  assert.ok(!ok([{ slot_no: 1, stock: "20" }]));
  const twice = list.safeParse([{ slot_no: 3, stock: 1 }, { slot_no: 3, stock: 2 }]);
  assert.equal(twice.success, false);
  assert.deepEqual(twice.error!.issues.map((i) => [i.path, i.message]), [[
    [1, "slot_no"],
    "slot 3 is given twice",
  ]]);
});

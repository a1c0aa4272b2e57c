/**
 * @module slot_stock
 * What a stock setting for a machine's slots may be, the same for every door that sets it
 * (`PUT /api/v1/machines/{serial_no}/slots`, the console's set-stock form): `slot_no` as a sale may
 * name it (0 … INT max, like `transaction.slot_no`), `stock` 0 … INT max (an `INT` column; below 0 only
 * sales take it), each slot once, at most {@link MAX_SLOTS_PER_WRITE} slots at once.
 */
import { z } from "zod";
import { SQL_INT_MAX } from "./storable.ts";

/** Slots one write may set (a machine has tens; one request stays one small transaction). */
export const MAX_SLOTS_PER_WRITE = 100;

/** `[{slot_no, stock}, …]`, 1 … {@link MAX_SLOTS_PER_WRITE} of them, no slot_no twice. */
export function slotStockList() {
  return z.array(z.object({
    slot_no: z.number().int().min(0).max(SQL_INT_MAX),
    stock: z.number().int().min(0).max(SQL_INT_MAX),
  })).min(1).max(MAX_SLOTS_PER_WRITE).superRefine((slots, ctx) => {
    const seen = new Set<number>();
    for (const [i, s] of slots.entries()) {
      if (seen.has(s.slot_no)) {
        ctx.addIssue({ code: "custom", path: [i, "slot_no"], message: `slot ${s.slot_no} is given twice` });
      }
      seen.add(s.slot_no);
    }
  });
}

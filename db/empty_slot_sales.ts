/**
 * @module empty_slot_sales
 * Which slots a batch of fresh sales took more from than their known stock: the same rule for both
 * dialects (`TransactionOutcome.emptySlots`). A slot with no `machine_slots` row, or below 0 already,
 * has no known stock.
 */
import type { EmptySlotSale, TransactionRecord } from "./store.ts";

export function emptySlotSales(
  fresh: readonly TransactionRecord[],
  known: readonly { serialNo: string; slotNo: number; stock: number }[],
): EmptySlotSale[] {
  const stock = new Map(known.map((k) => [`${k.serialNo}\u0000${k.slotNo}`, Number(k.stock)]));
  const sales = new Map<string, EmptySlotSale>();
  for (const r of fresh) {
    const key = `${r.serialNo}\u0000${r.slotNo}`;
    const before = stock.get(key);
    if (before === undefined) continue;
    const sale = sales.get(key) ??
      { serialNo: r.serialNo, slotNo: r.slotNo, stockBefore: before, sold: 0, transactionIds: [] };
    sale.sold += r.quantity;
    sale.transactionIds.push(r.transactionId);
    sales.set(key, sale);
  }
  // From a stock of 0 or more to below 0: the moment a slot is oversold. A slot already below 0 has
  // no known baseline (the back office never stocked it) or has been reported; it stays quiet.
  return [...sales.values()].filter((s) => s.stockBefore >= 0 && s.sold > s.stockBefore);
}

/**
 * @module transaction
 * `machine/{serial}/transaction` → one `transactions` row and the slot's stock decremented, in one
 * DB transaction, exactly once per `transaction_id` however often QoS 1 redelivers it. A sale that
 * takes a stocked slot below 0 (a machine cannot sell from an empty slot) is recorded all the same
 * and raises an alert `EMPTY_SLOT_SALE` (log warning, and the webhook when configured).
 */
import { z } from "zod";
import { defineJob } from "../job_handler.ts";
import { AMOUNT_MAX, SQL_INT_MAX } from "../../contract/storable.ts";

// The columns' real ranges (INT, DECIMAL(12,2)): a sale beyond them is dead-lettered at once.
export const transactionSchema = z.looseObject({
  transaction_id: z.string().min(1).max(64),
  slot_no: z.number().int().min(0).max(SQL_INT_MAX),
  quantity: z.number().int().min(1).max(10_000).default(1),
  amount: z.number().finite().min(0).max(AMOUNT_MAX),
});

export type Transaction = z.infer<typeof transactionSchema>;

export const transactionJob = defineJob<Transaction>({
  type: "transaction",
  schema: transactionSchema,
  async handle(jobs, { store, alert }) {
    const outcome = await store.recordTransactions(jobs.map((j) => ({
      transactionId: j.payload.transaction_id,
      serialNo: j.serialNo,
      slotNo: j.payload.slot_no,
      quantity: j.payload.quantity,
      amount: j.payload.amount,
      receivedAt: j.receivedAt,
      payload: j.payload,
    })));
    // Alerts only once the rows are stored, so a retried batch does not alert before it lands.
    const receivedAt = new Map(jobs.map((j) => [j.payload.transaction_id, j.receivedAt]));
    for (const s of outcome.emptySlots ?? []) {
      alert({
        serialNo: s.serialNo,
        code: "EMPTY_SLOT_SALE",
        level: "warning",
        message: `sold ${s.sold} from slot ${s.slotNo} whose stock was ${s.stockBefore} ` +
          `(transactions ${s.transactionIds.join(", ")})`,
        receivedAt: receivedAt.get(s.transactionIds[0]!) ?? new Date(),
      });
    }
  },
});

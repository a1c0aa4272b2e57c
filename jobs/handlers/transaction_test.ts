import assert from "node:assert/strict";
import type { Store, TransactionRecord } from "../../db/store.ts";
import type { Alert } from "../job_handler.ts";
import { transactionJob, transactionSchema } from "./transaction.ts";

Deno.test("transaction: a sale from an empty slot is recorded and raises an EMPTY_SLOT_SALE alert", async () => {
  const recorded: TransactionRecord[] = [];
  const store = {
    recordTransactions: (rows: TransactionRecord[]) => {
      recorded.push(...rows);
      return Promise.resolve({
        applied: rows.map((r) => r.transactionId),
        duplicates: [],
        emptySlots: [{ serialNo: "M-001", slotNo: 3, stockBefore: 0, sold: 1, transactionIds: ["T2"] }],
      });
    },
  } as unknown as Store;
  const alerts: Alert[] = [];
  const at = new Date("2026-04-14T01:00:00Z");
  const jobs = [
    { transaction_id: "T1", slot_no: 2, amount: 35 },
    { transaction_id: "T2", slot_no: 3, amount: 35 },
  ].map((p) => ({ serialNo: "M-001", receivedAt: at, payload: transactionSchema.parse(p) }));
  await transactionJob.handle(jobs, { store, alert: (a) => alerts.push(a) });
  assert.deepEqual(recorded.map((r) => r.transactionId), ["T1", "T2"], "both recorded");
  assert.deepEqual(alerts, [{
    serialNo: "M-001",
    code: "EMPTY_SLOT_SALE",
    level: "warning",
    message: "sold 1 from slot 3 whose stock was 0 (transactions T2)",
    receivedAt: at,
  }]);
});

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "./sqlite_store.ts";
import type { HeartbeatRecord, TransactionRecord } from "../store.ts";

/** Counts the distinct SQL texts every DatabaseSync prepares while `fn` runs. */
async function preparedTexts(fn: () => Promise<void>): Promise<Set<string>> {
  const texts = new Set<string>();
  const original = DatabaseSync.prototype.prepare;
  DatabaseSync.prototype.prepare = function (this: DatabaseSync, text: string) {
    texts.add(text);
    return original.call(this, text);
  } as typeof original;
  try {
    await fn();
  } finally {
    DatabaseSync.prototype.prepare = original;
  }
  return texts;
}

Deno.test("SqliteStore: batches of every size share a few prepared statements (SQLite keeps each in native memory)", async () => {
  const store = new SqliteStore({ path: ":memory:" });
  try {
    await store.migrate();
    let next = 0;
    const at = new Date(1_790_000_000_000);
    const texts = await preparedTexts(async () => {
      for (let n = 1; n <= 300; n += 7) {
        const heartbeats: HeartbeatRecord[] = Array.from({ length: n }, (_, i) => ({
          serialNo: `SQ${String(i).padStart(4, "0")}`,
          receivedAt: at,
          temperature: 4,
          currentPage: 1,
          payload: { n },
        }));
        await store.recordHeartbeats(heartbeats);
        const sales: TransactionRecord[] = Array.from({ length: n }, (_, i) => ({
          transactionId: `T${next++}`,
          serialNo: `SQ${String(i).padStart(4, "0")}`,
          slotNo: 1 + (i % 3),
          quantity: 1,
          amount: 100,
          receivedAt: at,
          payload: {},
        }));
        const outcome = await store.recordTransactions(sales);
        assert.equal(outcome.applied.length, n);
      }
    });
    // Five statement kinds (heartbeat upsert, machine ensure, id lookup, sale insert, stock upsert),
    // each in at most five row counts; before: one text per batch size, 200+ here.
    assert.ok(texts.size <= 30, `${texts.size} distinct statements prepared`);
    const machine = await store.getMachine("SQ0000");
    assert.ok(machine);
  } finally {
    await store.close();
  }
});

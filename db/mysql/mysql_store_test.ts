/**
 * What the MySQL store's pool costs in the gateway's heap: mysql2 allocates each connection's
 * prepared-statement LRU at its full size up front (16,000 entries, 512 KB, by default), and the
 * store prepares nothing, so the cache is kept small. The store's behaviour is tested on both
 * backends in db/store_test.ts.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../../tests/support.ts";
import { MysqlStore } from "./mysql_store.ts";

interface StatementCache {
  max: number;
  size: number;
}

/** The pool's one connection's prepared-statement cache (mysql2's lru.min, `_statements`). */
async function statementCache(store: MysqlStore): Promise<StatementCache> {
  const conn = await store.pool.getConnection();
  try {
    return (conn.connection as unknown as { _statements: StatementCache })._statements;
  } finally {
    conn.release();
  }
}

Deno.test("each pooled MySQL connection has a small prepared-statement cache and prepares nothing", async () => {
  const db = await freshDatabase();
  // One connection: the one checked below is the one that ran the store's queries.
  const store = new MysqlStore({ url: db.url, connectionLimit: 1 });
  try {
    await store.migrate();
    const statements = await statementCache(store);
    // Drizzle's migrator prepares its one look at `__drizzle_migrations`; the store itself, nothing.
    const afterMigrate = statements.size;
    assert.ok(afterMigrate <= 1);
    await store.recordHeartbeats([
      {
        serialNo: "M-1",
        receivedAt: new Date("2026-04-14T01:00:00Z"),
        temperature: 20,
        currentPage: 1,
        payload: {},
      },
    ]);
    assert.equal((await store.getMachine("M-1"))?.temperature, 20);
    await store.listMachines({ limit: 10, offset: 0 });
    assert.equal(await statementCache(store), statements, "the same connection");
    assert.ok(statements.max <= 16, `statement cache of ${statements.max} entries`);
    assert.equal(statements.size, afterMigrate, "the store's queries are text queries: nothing is prepared");
  } finally {
    await store.close();
    await db.drop();
  }
});

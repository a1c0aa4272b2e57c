/**
 * @module open_store
 * Chooses the store from configuration: MySQL / MariaDB when `DATABASE_URL` is set, else the
 * embedded SQLite file `gateway.db` in `DATA_DIR` (created if missing). Same interface, same meaning.
 * Only the chosen one is loaded: the other's code (driver, schema, Drizzle dialect) would stay in the
 * heap for nothing, and V8 lets the heap grow in proportion to what it holds.
 */
import { join } from "node:path";
import type { Store } from "./store.ts";

/** The part of the configuration the store needs (`DATABASE_URL`, `DATA_DIR`). */
export interface StoreOptions {
  url?: string;
  dataDir: string;
}

export async function openStore(o: StoreOptions): Promise<Store> {
  if (!o.url) {
    const { SqliteStore } = await import("./sqlite/sqlite_store.ts");
    return new SqliteStore({ path: join(o.dataDir, "gateway.db") });
  }
  const { MysqlStore } = await import("./mysql/mysql_store.ts");
  return new MysqlStore({ url: o.url });
}

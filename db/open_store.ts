/**
 * @module open_store
 * Chooses the store from configuration: MySQL / MariaDB when `DATABASE_URL` is set, else the
 * embedded SQLite file `gateway.db` in `DATA_DIR` (created if missing). Same interface, same meaning.
 */
import { join } from "node:path";
import { MysqlStore } from "./mysql/mysql_store.ts";
import { SqliteStore } from "./sqlite/sqlite_store.ts";
import type { Store } from "./store.ts";

/** The part of the configuration the store needs (`DATABASE_URL`, `DATA_DIR`). */
export interface StoreOptions {
  url?: string;
  dataDir: string;
}

export function openStore(o: StoreOptions): Store {
  if (!o.url) return new SqliteStore({ path: join(o.dataDir, "gateway.db") });
  return new MysqlStore({ url: o.url });
}

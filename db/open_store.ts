/**
 * @module open_store
 * Chooses the store from configuration: MySQL / MariaDB when `DATABASE_URL` is set, else the
 * embedded SQLite file `gateway.db` in `DATA_DIR` (created if missing). Same interface, same meaning.
 */
import { join } from "node:path";
import type { Config } from "../config.ts";
import { MysqlStore } from "./mysql/mysql_store.ts";
import { SqliteStore } from "./sqlite/sqlite_store.ts";
import type { Store } from "./store.ts";

export function openStore(config: Config): Store {
  if (!config.database.url) return new SqliteStore({ path: join(config.database.dataDir, "gateway.db") });
  return new MysqlStore({ url: config.database.url });
}

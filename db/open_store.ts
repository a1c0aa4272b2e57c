/**
 * @module open_store
 * Chooses the store from configuration: MySQL / MariaDB when `DATABASE_URL` is set.
 */
import type { Config } from "../config.ts";
import { MysqlStore } from "./mysql_store.ts";
import type { Store } from "./store.ts";

export function openStore(config: Config): Store {
  if (!config.database.url) {
    throw new Error("The embedded database is not available in this build: set DATABASE_URL");
  }
  return new MysqlStore({ url: config.database.url });
}

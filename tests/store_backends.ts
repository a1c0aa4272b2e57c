/**
 * @module store_backends
 * The two {@link Store} implementations as test fixtures, so conformance tests run each case on both:
 * MysqlStore on a fresh MariaDB database (`gw_<random>`, dropped after) and SqliteStore on a file in
 * a temporary directory (removed after). Both are migrated from the committed migrations.
 */
import { join } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { MysqlStore } from "../db/mysql/mysql_store.ts";
import { SqliteStore } from "../db/sqlite/sqlite_store.ts";
import type { Store } from "../db/store.ts";
import { freshDatabase } from "./support.ts";

export interface StoreFixture {
  store: Store;
  /** Runs raw SQL on the backing database (for checks the interface has no method for). */
  rows(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Changes rows behind the store's back (what the back office writes, e.g. a restock). */
  exec(sql: string, params?: unknown[]): Promise<void>;
  cleanup(): Promise<void>;
}

export interface StoreBackend {
  dialect: "mysql" | "sqlite";
  open(): Promise<StoreFixture>;
}

export const mysqlBackend: StoreBackend = {
  dialect: "mysql",
  async open() {
    const db = await freshDatabase();
    const store = new MysqlStore({ url: db.url });
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      await db.drop();
      throw error;
    }
    return {
      store,
      async rows(sql, params = []) {
        const [rows] = await store.pool.query(sql, params);
        return rows as Record<string, unknown>[];
      },
      async exec(sql, params = []) {
        await store.pool.query(sql, params);
      },
      async cleanup() {
        await store.close();
        await db.drop();
      },
    };
  },
};

export const sqliteBackend: StoreBackend = {
  dialect: "sqlite",
  async open() {
    const dir = await Deno.makeTempDir({ prefix: "gw_store_" });
    const path = join(dir, "gateway.db");
    const store = new SqliteStore({ path });
    await store.migrate();
    return {
      store,
      exec(sql, params = []) {
        const db = new DatabaseSync(path);
        try {
          db.prepare(sql).run(...params as SQLInputValue[]);
        } finally {
          db.close();
        }
        return Promise.resolve();
      },
      rows(sql, params = []) {
        // A second connection: WAL lets it read what the store committed.
        const db = new DatabaseSync(path, { readOnly: true });
        try {
          return Promise.resolve(
            db.prepare(sql).all(...params as SQLInputValue[]) as Record<string, unknown>[],
          );
        } finally {
          db.close();
        }
      },
      async cleanup() {
        await store.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
};

export const STORE_BACKENDS: readonly StoreBackend[] = [mysqlBackend, sqliteBackend];

/**
 * @module embedded_migrations_test
 * The committed `db/migrations/embedded.ts` matches the drizzle-kit folders, gives drizzle exactly
 * what its folder migrator reads (so both record the same hashes), and migrates a real MariaDB.
 */
import assert from "node:assert/strict";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { migrate } from "drizzle-orm/mysql2/migrator";
import { EMBEDDED_FILE, renderEmbeddedMigrations } from "../tools/scripts/embed_migrations.ts";
import { freshDatabase, query } from "../tests/support.ts";
import { embeddedMigrations } from "./embedded_migrations.ts";
import { EMBEDDED_MIGRATIONS } from "./migrations/embedded.ts";
import { MysqlStore } from "./mysql/mysql_store.ts";

const folder = (dialect: string) => new URL(`./migrations/${dialect}`, import.meta.url).pathname;

Deno.test("db/migrations/embedded.ts is up to date with the .sql files (else: deno task db:embed)", async () => {
  assert.equal(await Deno.readTextFile(EMBEDDED_FILE), await renderEmbeddedMigrations());
  assert.ok(EMBEDDED_MIGRATIONS.mysql?.length, "the MySQL migrations are embedded");
});

Deno.test("the embedded list is what drizzle's folder migrator reads: same statements, hashes, times", () => {
  for (const dialect of Object.keys(EMBEDDED_MIGRATIONS) as ("mysql" | "sqlite")[]) {
    assert.deepEqual(
      embeddedMigrations(dialect),
      readMigrationFiles({ migrationsFolder: folder(dialect) }),
      dialect,
    );
  }
});

Deno.test("a dialect without migrations is a clear error", () => {
  assert.throws(
    () => embeddedMigrations("oracle" as "mysql"),
    /No embedded migrations for oracle: .*deno task db:embed/,
  );
});

Deno.test("MysqlStore migrates from the embedded list, and the folder migrator then finds nothing to do", async () => {
  const db = await freshDatabase();
  const store = new MysqlStore({ url: db.url });
  try {
    await store.migrate();
    await store.migrate(); // idempotent
    const tables = await query<{ name: string }>(
      db.url,
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?",
      [db.name],
    );
    const names = tables.map((t) => t.name).sort();
    for (const table of ["machine_logs", "machine_slots", "machines", "transactions"]) {
      assert.ok(names.includes(table), `${table} in ${names.join(", ")}`);
    }
    // drizzle-kit's own migrator (reading the folder) sees every migration as applied.
    await migrate(store.db, { migrationsFolder: folder("mysql") });
    const applied = await query<{ hash: string }>(db.url, "SELECT hash FROM __drizzle_migrations");
    assert.deepEqual(
      applied.map((r) => r.hash),
      embeddedMigrations("mysql").map((m) => m.hash),
    );
  } finally {
    await store.close();
    await db.drop();
  }
});

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
import { SqliteStore } from "./sqlite/sqlite_store.ts";
import type { Store } from "./store.ts";
import { join } from "node:path";

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

/** Rows written by the schema before migration 0002 (sale identity, exact identities). */
async function seedBefore0002(store: Store): Promise<void> {
  await store.recordTransactions([{
    transactionId: "T202604140001",
    serialNo: "M-OLD",
    slotNo: 3,
    quantity: 2,
    amount: 35,
    receivedAt: new Date("2026-04-14T01:00:00Z"),
    payload: { transaction_id: "T202604140001", slot_no: 3, quantity: 2, amount: 35 },
  }]);
  await store.setMachineToken("M-OLD", "c".repeat(64), new Date("2026-04-14T01:00:00Z"));
}

/** After 0002: the old rows are all there, and the new identity rules hold on them. */
async function checkAfter0002(store: Store): Promise<void> {
  const old = await store.getMachine("M-OLD");
  assert.deepEqual(old?.slots, [{ slotNo: 3, stock: -2 }]);
  assert.equal(await store.getMachineTokenHash("M-OLD"), "c".repeat(64));
  const again = await store.recordTransactions([
    { ...sale("M-OLD"), quantity: 2 },
    sale("M-NEW"),
    sale("m-old"),
  ]);
  assert.deepEqual(again.duplicates, [{ serialNo: "M-OLD", transactionId: "T202604140001" }]);
  assert.deepEqual(again.applied.map((k) => k.serialNo), ["M-NEW", "m-old"]);
  assert.deepEqual((await store.getMachine("M-OLD"))?.slots, [{ slotNo: 3, stock: -2 }]);
  assert.equal(await store.getMachineTokenHash("m-old"), null);
}

function sale(serialNo: string) {
  return {
    transactionId: "T202604140001",
    serialNo,
    slotNo: 3,
    quantity: 1,
    amount: 35,
    receivedAt: new Date("2026-04-14T01:00:05Z"),
    payload: { transaction_id: "T202604140001", slot_no: 3, quantity: 1, amount: 35 },
  };
}

Deno.test("mysql: migration 0002 keeps every row and makes the sale (serial_no, transaction_id), exactly", async () => {
  const db = await freshDatabase();
  const all = embeddedMigrations("mysql");
  const before = new MysqlStore({ url: db.url, migrations: all.slice(0, 2) });
  try {
    await before.migrate();
    await seedBefore0002(before);
  } finally {
    await before.close();
  }
  const after = new MysqlStore({ url: db.url });
  try {
    await after.migrate();
    await checkAfter0002(after);
  } finally {
    await after.close();
    await db.drop();
  }
});

Deno.test("sqlite: migration 0002 keeps every row and makes the sale (serial_no, transaction_id), exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gw_migrate_" });
  const path = join(dir, "gateway.db");
  const all = embeddedMigrations("sqlite");
  const before = new SqliteStore({ path, migrations: all.slice(0, 2) });
  try {
    await before.migrate();
    await seedBefore0002(before);
  } finally {
    await before.close();
  }
  const after = new SqliteStore({ path });
  try {
    await after.migrate();
    await checkAfter0002(after);
  } finally {
    await after.close();
    await Deno.remove(dir, { recursive: true });
  }
});

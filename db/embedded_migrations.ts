/**
 * @module embedded_migrations
 * The committed migrations as drizzle's `MigrationMeta` list, built exactly as drizzle's
 * `readMigrationFiles` builds it from a folder (same statements, same sha256 hash, same
 * `folderMillis`), so a database migrated from the folder and one migrated from here agree. A
 * bundle or a compiled binary has no `db/migrations/` folder on disk, and the gateway needs no
 * read permission for the source tree. Stores apply it with
 * `db.dialect.migrate(embeddedMigrations("mysql"), db.session, { migrationsFolder: "" })`.
 */
import { createHash } from "node:crypto";
import type { MigrationMeta } from "drizzle-orm/migrator";
import { EMBEDDED_MIGRATIONS } from "./migrations/embedded.ts";

/** The migrations of `dialect` (a folder name under `db/migrations/`), oldest first. */
export function embeddedMigrations(dialect: "mysql" | "sqlite"): MigrationMeta[] {
  const list = EMBEDDED_MIGRATIONS[dialect];
  if (!list) {
    throw new Error(
      `No embedded migrations for ${dialect}: generate db/migrations/${dialect} and run \`deno task db:embed\``,
    );
  }
  return list.map((m) => ({
    sql: m.sql.split("--> statement-breakpoint"),
    bps: m.breakpoints,
    folderMillis: m.when,
    hash: createHash("sha256").update(m.sql).digest("hex"),
  }));
}

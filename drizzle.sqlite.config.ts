/** @module drizzle.sqlite.config — `deno task db:generate` writes the SQLite migrations from db/schema_sqlite.ts. */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./db/schema_sqlite.ts",
  out: "./db/migrations/sqlite",
});

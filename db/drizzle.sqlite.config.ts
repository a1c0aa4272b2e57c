/** @module drizzle.sqlite.config — `deno task db:generate` writes the SQLite migrations from db/sqlite/schema.ts. */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./db/sqlite/schema.ts",
  out: "./db/migrations/sqlite",
});

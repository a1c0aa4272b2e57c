/** @module drizzle.config — `deno task db:generate` writes the MySQL migrations from db/mysql/schema.ts. */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "mysql",
  schema: "./db/mysql/schema.ts",
  out: "./db/migrations/mysql",
});

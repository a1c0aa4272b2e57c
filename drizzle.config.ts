/** @module drizzle.config — `deno task db:generate` writes the MySQL migrations from db/schema.ts. */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "mysql",
  schema: "./db/schema.ts",
  out: "./db/migrations/mysql",
});

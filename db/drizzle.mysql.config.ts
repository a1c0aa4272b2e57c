/** @module drizzle.config — `deno task db:generate` writes the MySQL migrations from db/mysql/schema.ts. */
// A plain object, not drizzle-kit's defineConfig: importing drizzle-kit here would put it (and its
// esbuild binaries) in deno.json and the lock, installed by every `deno task start`. db:generate runs it
// by its npm: name with --no-lock instead.
export default {
  dialect: "mysql",
  schema: "./db/mysql/schema.ts",
  out: "./db/migrations/mysql",
};

/**
 * @module tasks_test
 * The tasks by the ecosystem's names (`deno task ci`, `ok` kept as its alias), and no dev-only tool in
 * what `deno task start` installs: Deno sets up every npm package of deno.json's imports and of the lock
 * on the first run, so drizzle-kit (and the esbuild binaries it brings) must be in neither; `db:generate`
 * runs it by its `npm:` name with `--no-lock`.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "./launched_gateway.ts";

const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));
const lock = await Deno.readTextFile(`${REPO_ROOT}deno.lock`);

Deno.test("tasks: ci is fmt --check, lint, check and the tests; ok is its alias", () => {
  assert.equal(denoJson.tasks.ci, "deno fmt --check && deno lint && deno check . && deno task test");
  assert.equal(denoJson.tasks.ok, "deno task ci");
});

Deno.test("tasks: drizzle-kit is not in the imports nor the lock, so start/dev/bundle never install it", () => {
  assert.equal(denoJson.imports["drizzle-kit"], undefined);
  assert.doesNotMatch(lock, /drizzle-kit|esbuild/);
  assert.match(denoJson.tasks["db:generate"], /^deno run -A --no-lock npm:drizzle-kit@[\d.]+ generate /);
  for (const task of ["start", "dev", "bundle", "compile"]) {
    assert.doesNotMatch(denoJson.tasks[task], /drizzle-kit/, task);
  }
});

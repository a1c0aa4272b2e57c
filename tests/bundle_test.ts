/**
 * @module bundle_test
 * `deno task bundle` (its exact commands, writing to a temporary folder instead of dist/) gives two
 * JavaScript files that run with only the deno binary: started through the bundled launcher from a
 * folder holding nothing else (no node_modules, no deno.json, no migrations folder), with the narrow
 * permission set, the gateway serves `/healthz` and stops with exit code 0 on SIGTERM.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CONFIG_VARIABLES } from "../config.ts";
import { LIBRARY_ENV_VARIABLES } from "../launcher/permission_flags.ts";
import { freePort, LaunchedGateway, REPO_ROOT } from "./launched_gateway.ts";
import { testEnv } from "./support.ts";

/** Runs the `bundle` task of deno.json with `dist/` replaced by `outDir`; returns the file names. */
async function bundleInto(outDir: string): Promise<string[]> {
  const denoJson = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  const task: string = denoJson.tasks.bundle;
  const outputs: string[] = [];
  for (const command of task.split("&&").map((c) => c.trim())) {
    const [program, ...args] = command.split(/\s+/);
    assert.equal(program, "deno", `the bundle task runs deno only: ${command}`);
    const rewritten = args.map((a) => a.startsWith("dist/") ? join(outDir, a.slice("dist/".length)) : a);
    const out = rewritten[rewritten.indexOf("--output") + 1]!;
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: rewritten,
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    outputs.push(out.slice(outDir.length + 1));
  }
  return outputs;
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

let built: Promise<{ dir: string; files: string[] }> | undefined;
/** One build for the whole file; each test copies it into its own empty folder. */
function build(): Promise<{ dir: string; files: string[] }> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "gw-bundle-" });
    return { dir, files: await bundleInto(dir) };
  })();
  return built;
}

async function emptyFolderWithBundles(): Promise<string> {
  const { dir, files } = await build();
  const run = await Deno.makeTempDir({ prefix: "gw-run-" });
  for (const file of files) await Deno.copyFile(join(dir, file), join(run, file));
  return run;
}

Deno.test("the bundle task gives gateway.js and launch.js; every variable the bundle reads is granted or ignored", async () => {
  const { dir, files } = await build();
  assert.deepEqual(files.sort(), ["gateway.js", "launch.js"]);
  const source = await Deno.readTextFile(join(dir, "gateway.js"));
  assert.doesNotMatch(
    source,
    /from\s+["']npm:|import\(["']npm:|from\s+["']jsr:/,
    "npm packages are bundled in",
  );
  assert.doesNotMatch(
    source,
    /migrations\/mysql|migrations\/sqlite/,
    "no migrations folder is read at run time",
  );
  const known = new Set([...CONFIG_VARIABLES, ...LIBRARY_ENV_VARIABLES]);
  const read = new Set<string>();
  for (
    const m of source.matchAll(/process\.env\.([A-Za-z_][A-Za-z0-9_]*)|process\.env\[["']([^"']+)["']\]/g)
  ) {
    read.add(m[1] ?? m[2]!);
  }
  for (const m of source.matchAll(/Deno\.env\.get\(["']([^"']+)["']\)/g)) read.add(m[1]!);
  assert.ok(read.size > 0, "the scan finds the variables the libraries read");
  const unknown = [...read].filter((name) => !known.has(name)).sort();
  assert.deepEqual(unknown, [], "add these to LIBRARY_ENV_VARIABLES (launcher/permission_flags.ts)");
});

Deno.test("the bundle runs from an empty folder with only deno and the narrow set: external broker, Redis, MySQL", async () => {
  const t = await testEnv();
  const run = await emptyFolderWithBundles();
  const gateway = new LaunchedGateway({
    cwd: run,
    launcher: "launch.js",
    entry: "gateway.js",
    env: { ...t.env, HTTP_HOST: "127.0.0.1", HTTP_PORT: String(freePort()), LOG_LEVEL: "warning" },
  });
  try {
    await gateway.healthy();
    const ready = await gateway.get("/readyz");
    assert.equal(ready.status, 200, `readyz: ${JSON.stringify(ready.body)}\n${gateway.output}`);
    const status = await gateway.get("/mqtt/status");
    assert.deepEqual((status.body as { backends: unknown }).backends, {
      broker: "external",
      queue: "redis",
      database: "mysql",
    });
    const commandLine = await gateway.gatewayCommandLine();
    assert.ok(
      !commandLine.some((a) => /^(-A|--allow-all|--allow-run|--allow-ffi)/.test(a)),
      commandLine.join(" "),
    );
    assert.equal(await gateway.stop(), 0, `exit code 0 after SIGTERM:\n${gateway.output}`);
    assert.deepEqual(await listDir(run), ["gateway.js", "launch.js"], "nothing else was needed or written");
  } finally {
    await gateway.stop(5000);
    await t.cleanup();
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("the bundle runs from an empty folder with nothing configured: embedded broker, queue and database", async () => {
  const run = await emptyFolderWithBundles();
  const gateway = new LaunchedGateway({
    cwd: run,
    launcher: "launch.js",
    entry: "gateway.js",
    env: {
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(freePort()),
      MQTT_LISTEN_PORT: String(freePort()),
      LOG_LEVEL: "warning",
    },
  });
  try {
    await gateway.healthy();
    const ready = await gateway.get("/readyz");
    assert.equal(ready.status, 200, `readyz: ${JSON.stringify(ready.body)}\n${gateway.output}`);
    const status = await gateway.get("/mqtt/status");
    assert.deepEqual((status.body as { backends: unknown }).backends, {
      broker: "embedded",
      queue: "sqlite",
      database: "sqlite",
    });
    // The console's pages and assets are in the bundle (no files beside it, no CDN).
    for (const path of ["/console/sign-in", "/console/assets/console.js", "/console/assets/console.css"]) {
      const res = await fetch(`http://127.0.0.1:${gateway.port}${path}`);
      assert.equal(res.status, 200, path);
      assert.ok((await res.text()).length > 500, path);
    }
    assert.equal(await gateway.stop(), 0, `exit code 0 after SIGTERM:\n${gateway.output}`);
    assert.deepEqual(
      await listDir(run),
      ["data", "gateway.js", "launch.js"],
      "state only in DATA_DIR (./data)",
    );
  } finally {
    await gateway.stop(5000);
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("cleanup: the shared bundle folder", async () => {
  if (built) await Deno.remove((await built).dir, { recursive: true });
});

/**
 * @module permissions_test
 * `deno task start` runs the gateway without `-A`: the launcher computes the permission set from the
 * configuration, the gateway runs and serves inside it, and anything outside it (another address, a
 * file outside DATA_DIR, another variable, a program, OS information) is refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../config.ts";
import { permissionFlags } from "../launcher/permission_flags.ts";
import { v8Flags } from "../launcher/v8_flags.ts";
import { baseEnv, freePort, LaunchedGateway, REPO_ROOT, startTaskFlags } from "./launched_gateway.ts";
import { SERVICES, testEnv } from "./support.ts";

const FORBIDDEN = /^(-A|--allow-all|--allow-run|--allow-ffi|--allow-sys|--allow-import)\b/;

/** Runs `launch.ts main.ts` with exactly the flags the `start` task gives the launcher. */
async function launchLikeStartTask(env: Record<string, string>) {
  const denoFlags = await startTaskFlags();
  const gateway = new LaunchedGateway({
    cwd: REPO_ROOT,
    launcher: "launch.ts",
    entry: "main.ts",
    env,
    denoFlags,
  });
  return { gateway, denoFlags };
}

Deno.test("deno task start: main.ts runs with the computed set (no -A, no run) and serves /healthz and /readyz", async () => {
  const t = await testEnv();
  const dataDir = await Deno.makeTempDir({ prefix: "gw-perm-" });
  const env = {
    ...t.env,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(freePort()),
    DATA_DIR: dataDir,
    LOG_LEVEL: "warning",
  };
  const { gateway, denoFlags } = await launchLikeStartTask(env);
  try {
    await gateway.healthy();
    const ready = await gateway.get("/readyz");
    assert.equal(ready.status, 200, `readyz: ${JSON.stringify(ready.body)}\n${gateway.output}`);

    // The launcher may start deno and read the environment; that is all it is given.
    assert.deepEqual(denoFlags.sort(), ["--allow-env", "--allow-read", "--allow-run"]);
    const commandLine = await gateway.gatewayCommandLine();
    assert.equal(commandLine.at(-1), "main.ts");
    const flags = commandLine.slice(commandLine.indexOf("run") + 1, -1);
    assert.deepEqual(
      flags,
      [...permissionFlags(loadConfig(env)), ...v8Flags(loadConfig(env).heapMb)],
      "the gateway runs with exactly the computed flags and the heap limits",
    );
    for (const flag of flags) assert.doesNotMatch(flag, FORBIDDEN, flag);

    assert.equal(await gateway.stop(), 0, `exit code 0 after SIGTERM:\n${gateway.output}`);
  } finally {
    await gateway.stop(5000);
    await t.cleanup();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("deno task start with nothing configured: embedded broker, queue and database inside DATA_DIR", async () => {
  const dataDir = join(await Deno.makeTempDir({ prefix: "gw-perm-" }), "data");
  const env = {
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(freePort()),
    MQTT_LISTEN_PORT: String(freePort()),
    DATA_DIR: dataDir,
    LOG_LEVEL: "warning",
  };
  const { gateway } = await launchLikeStartTask(env);
  try {
    await gateway.healthy();
    const ready = await gateway.get("/readyz");
    assert.equal(ready.status, 200, `readyz: ${JSON.stringify(ready.body)}\n${gateway.output}`);
    const net = (await gateway.gatewayCommandLine()).find((a) => a.startsWith("--allow-net="));
    assert.deepEqual(
      net?.slice("--allow-net=".length).split(",").sort(),
      [`127.0.0.1:${env.HTTP_PORT}`, `127.0.0.1:${env.MQTT_LISTEN_PORT}`].sort(),
      "only its own two listen addresses",
    );
    assert.ok((await Array.fromAsync(Deno.readDir(dataDir))).length > 0, "the embedded state is in DATA_DIR");
    assert.equal(await gateway.stop(), 0, `exit code 0 after SIGTERM:\n${gateway.output}`);
  } finally {
    await gateway.stop(5000);
    await Deno.remove(join(dataDir, ".."), { recursive: true });
  }
});

Deno.test("inside the computed set: addresses, files, variables, programs and OS info outside it are refused", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "gw-perm-" });
  const outside = await Deno.makeTempDir({ prefix: "gw-outside-" });
  const env = {
    MQTT_URL: SERVICES.mqtt,
    REDIS_URL: SERVICES.redis,
    DATABASE_URL: `${SERVICES.mysqlAdmin}/unused`,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "5200",
    DATA_DIR: dataDir,
    DEBUG: "*",
  };
  const flags = permissionFlags(loadConfig(env));
  const otherPort = freePort();
  const probes = {
    // in the set
    [`connect:${new URL(SERVICES.redis).host}`]: "ok",
    [`nodeconnect:${new URL(SERVICES.mysqlAdmin).host}`]: "ok",
    [`nodeconnect:${new URL(SERVICES.mqtt).host}`]: "ok",
    [`write:${join(dataDir, "probe.txt")}`]: "ok",
    [`read:${join(dataDir, "probe.txt")}`]: "ok",
    "env:HTTP_PORT": "ok",
    "env:DEBUG": "unset", // a library variable reads as unset: only config.ts configures the gateway
    // outside it
    "connect:127.0.0.2:9": "NotCapable",
    [`connect:127.0.0.1:${otherPort}`]: "NotCapable",
    [`nodeconnect:127.0.0.2:${new URL(SERVICES.redis).port}`]: "NotCapable",
    "fetch:http://example.com/": "NotCapable",
    [`listen:${otherPort}`]: "NotCapable",
    "read:/etc/hostname": "NotCapable",
    [`write:${join(outside, "x.txt")}`]: "NotCapable",
    "env:HOME": "NotCapable",
    "run:true": "NotCapable",
    "sys:hostname": "NotCapable",
  };
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, "tests/permission_probe.ts", ...Object.keys(probes)],
      cwd: REPO_ROOT,
      clearEnv: true,
      env: { ...baseEnv(), ...env },
    }).output();
    const text = new TextDecoder().decode(stdout);
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual(JSON.parse(text), probes);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("launch.ts --dry-run and --compile: the same flags and heap limits, the output under dist/, never --allow-run", async () => {
  const env = { MQTT_URL: "mqtt://emqx:1883", HTTP_PORT: "5200", DATA_DIR: "/var/lib/gateway" };
  const run = async (...args: string[]) => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-env", "--allow-read", "launch.ts", ...args],
      cwd: REPO_ROOT,
      clearEnv: true,
      env: { ...baseEnv(), ...env },
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    return new TextDecoder().decode(stdout).trim();
  };
  const flags = [
    ...permissionFlags(loadConfig(env)),
    "--v8-flags=--max-old-space-size=128,--max-semi-space-size=6,--heap-growing-percent=150", // GATEWAY_HEAP_MB's default
  ];
  assert.equal(await run("--print-flags"), flags.join("\n"));
  assert.equal(await run("--dry-run", "main.ts"), ["deno", "run", ...flags, "main.ts"].join(" "));
  assert.equal(
    await run("--dry-run", "--compile", "main.ts", "--target", "aarch64-unknown-linux-gnu"),
    [
      "deno",
      "compile",
      ...flags,
      "--output",
      "dist/star-cloud-gateway",
      "--target",
      "aarch64-unknown-linux-gnu",
      "main.ts",
    ]
      .join(" "),
  );
  for (const flag of flags) assert.doesNotMatch(flag, FORBIDDEN, flag);
});

Deno.test("a bad configuration stops the launcher with the variable's name, before anything starts", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "launch.ts", "main.ts"],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: { ...baseEnv(), HTTP_PORT: "99999" },
  }).output();
  assert.equal(code, 2);
  assert.match(new TextDecoder().decode(stderr), /Configuration error: Invalid HTTP_PORT/);
});

/**
 * @module launch
 * Runs the gateway with the narrow permission set its configuration needs
 * (`launcher/permission_flags.ts`) instead of `-A`. The launcher reads the same environment the
 * gateway will (and `DEVICE_PROXIES_FILE`, which `loadConfig` reads) and starts one
 * `deno run <flags> <entry>`; the gateway it starts has no `--allow-run`. It also sets V8's heap
 * limits (`GATEWAY_HEAP_MB`, `launcher/v8_flags.ts`).
 *
 *     deno run -E -R --allow-run launch.ts main.ts               # from source (deno task start)
 *     deno run -E -R --allow-run launch.js gateway.js            # the bundles (dist/, Docker image)
 *     deno run -E -R --allow-run launch.ts --compile main.ts     # deno compile with the flags baked in
 *     deno run -E -R launch.ts --print-flags                     # show the flags, start nothing
 *     deno run -E -R launch.ts --dry-run main.ts                 # show the command, start nothing
 *
 * With `--compile`, arguments after the entry go to `deno compile` (e.g. `--target
 * aarch64-unknown-linux-gnu`, `--output path`); the output defaults to `dist/star-cloud-gateway`.
 * SIGINT / SIGTERM (and SIGUSR2, the drain) are passed on to the gateway; the launcher exits with its exit code.
 */
import { ConfigError, loadConfig } from "./config.ts";
import { permissionFlags } from "./launcher/permission_flags.ts";
import { v8Flags } from "./launcher/v8_flags.ts";
import { environment } from "./launcher/env_file.ts";

const USAGE = "usage: launch.ts [--print-flags | [--dry-run] [--compile] <entry.ts|entry.js> [args...]]";
const COMPILE_OUTPUT = "dist/star-cloud-gateway";

async function launch(argv: string[]): Promise<number> {
  // `.env`'s variables under the process's own: the tasks pass no --env-file (see env_file.ts).
  const env = environment();
  let flags: string[];
  try {
    const config = loadConfig(env);
    flags = [
      ...permissionFlags(config, env.DEVICE_PROXIES_FILE?.trim() || undefined),
      ...v8Flags(config.heapMb),
    ];
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const options = new Set<string>();
  let i = 0;
  for (; i < argv.length && ["--print-flags", "--dry-run", "--compile"].includes(argv[i]!); i++) {
    options.add(argv[i]!);
  }
  if (options.has("--print-flags")) {
    console.log(flags.join("\n"));
    return 0;
  }
  const dryRun = options.has("--dry-run");
  const compile = options.has("--compile");
  const [entry, ...rest] = argv.slice(i);
  if (!entry || entry.startsWith("-")) {
    console.error(USAGE);
    return 2;
  }
  const denoArgs = compile
    ? [
      "compile",
      ...flags,
      ...(rest.some((a) => a === "-o" || a.startsWith("--output")) ? [] : ["--output", COMPILE_OUTPUT]),
      ...rest,
      entry,
    ]
    : ["run", ...flags, entry, ...rest];
  if (dryRun) {
    console.log(["deno", ...denoArgs].join(" "));
    return 0;
  }

  const child = new Deno.Command(Deno.execPath(), {
    args: denoArgs,
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM", "SIGUSR2"];
  const removers = signals.map((signal) => {
    const pass = () => {
      try {
        child.kill(signal);
      } catch {
        // it has exited already
      }
    };
    Deno.addSignalListener(signal, pass);
    return () => Deno.removeSignalListener(signal, pass);
  });
  try {
    return (await child.status).code;
  } finally {
    for (const remove of removers) remove();
  }
}

if (import.meta.main) Deno.exit(await launch(Deno.args));

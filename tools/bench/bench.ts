/**
 * @module bench
 * `deno task bench` (`bench:smoke` for a short run CI may call): starts a private Mosquitto,
 * makes a fresh database `gw_bench_<run>` and Redis keys `bench_<run>_*`, runs the scenarios
 * against the gateway in a subprocess, prints a Markdown table and the goals, and writes
 * `tools/bench/results/<timestamp>.json`; a full run (no `--smoke`, no `--only`, no `--keep-docs`) also
 * writes its table into docs/benchmarks.md. A benchmark, not a test: it asserts nothing about time, and
 * fails only when a scenario cannot run at all.
 *
 * Flags: `--smoke`, `--only a,b` (ceilings, uplink-queue, worker-drain, uplink-e2e, uplink-rate,
 * stress, downlink, scale, embedded, gateways), `--env NAME=VALUE` (gateway setting under test; repeatable),
 * `--redis URL`, `--mysql URL`, `--scale-machines N`, `--scale-seconds N`, `--downlink-rate N` (commands/s), `--out DIR`, `--split` (scenarios 2b-5 with the
 * worker role in a second gateway process), `--console` (scenarios 2b-5 with the operator console's live
 * stream open, to compare with a run without it), `--profile` (a V8 CPU profile of each gateway process
 * per scenario, written to `<out>/<run>-profiles/*.cpuprofile`, and its top files printed).
 */
import { parseArgs } from "node:util";
import { type Ceilings, runCeilings } from "./ceilings.ts";
import { openConsoleStream } from "./console_stream.ts";
import {
  type BenchContext,
  closeContext,
  FULL,
  gatewayEnv,
  openContext,
  queueName,
  randomId,
  type ScenarioResult,
  SMOKE,
} from "./context.ts";
import { runDownlink } from "./downlink.ts";
import { runEmbedded } from "./embedded.ts";
import { runGateways } from "./gateways.ts";
import { GatewayProcess } from "./gateway_process.ts";
import { evaluateGoals, lowestCeiling, renderTable } from "./report.ts";
import { runScale } from "./scale.ts";
import { Mosquitto, openFileLimit } from "./services.ts";
import { runStress } from "./stress.ts";
import { runUplinkE2e, runUplinkQueue, runUplinkRate } from "./uplink.ts";
import { runWorkerDrain } from "./worker_drain.ts";
import { withLastRun } from "./docs_section.ts";

const SCENARIOS = [
  "ceilings",
  "uplink-queue",
  "worker-drain",
  "uplink-e2e",
  "uplink-rate",
  "stress",
  "downlink",
  "scale",
  "embedded",
  "gateways",
] as const;

async function versionOf(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return new TextDecoder().decode(out.stdout.length ? out.stdout : out.stderr).split("\n")[0]!.trim();
  } catch {
    return "unknown";
  }
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      smoke: { type: "boolean", default: false },
      only: { type: "string" },
      "keep-docs": { type: "boolean", default: false },
      env: { type: "string", multiple: true, default: [] },
      redis: { type: "string", default: "redis://127.0.0.1:6379/0" },
      mysql: { type: "string", default: "mysql://root@127.0.0.1:3306" },
      "scale-machines": { type: "string" },
      "scale-seconds": { type: "string" },
      "downlink-rate": { type: "string" },
      split: { type: "boolean", default: false },
      console: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      out: { type: "string", default: new URL("./results/", import.meta.url).pathname },
    },
  });
  const only = new Set(values.only ? values.only.split(",").map((s) => s.trim()) : SCENARIOS);
  for (const name of only) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      console.error(`bench: unknown scenario "${name}"; expected some of ${SCENARIOS.join(", ")}`);
      return 2;
    }
  }
  const overrides: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const at = kv.indexOf("=");
    if (at <= 0) {
      console.error(`bench: --env wants NAME=VALUE, got "${kv}"`);
      return 2;
    }
    overrides[kv.slice(0, at)] = kv.slice(at + 1);
    // An empty value means "not set" (Deno refuses an empty DENO_V8_FLAGS).
    if (kv.slice(at + 1) === "") delete overrides[kv.slice(0, at)];
  }
  const sizes = { ...(values.smoke ? SMOKE : FULL) };
  if (values["scale-machines"]) sizes.scaleMachines = Number(values["scale-machines"]);
  if (values["scale-seconds"]) sizes.scaleSeconds = Number(values["scale-seconds"]);
  if (values["downlink-rate"]) sizes.downlinkRate = Number(values["downlink-rate"]);

  const controller = new AbortController();
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const runId = randomId(6);
  const startedAt = new Date();
  const limit = await openFileLimit();
  console.log(
    `Benchmark run ${runId}${values.smoke ? " (smoke)" : ""}: ${navigator.hardwareConcurrency} cores, ` +
      `open files ${limit?.soft}/${limit?.hard}; gateway settings ${JSON.stringify(overrides)}`,
  );

  if (values.profile) {
    GatewayProcess.profileDir = `${values.out!.replace(/\/$/, "")}/${runId}-profiles`;
    await Deno.mkdir(GatewayProcess.profileDir, { recursive: true });
  }
  const mosquitto = await Mosquitto.start();
  let ctx: BenchContext | undefined;
  const results: ScenarioResult[] = [];
  let ceilings: Ceilings | null = null;
  const step = async (name: string, run: () => Promise<ScenarioResult>) => {
    if (controller.signal.aborted) return;
    const t0 = performance.now();
    console.log(`… ${name}`);
    try {
      const result = await run();
      results.push(result);
      const took = ((performance.now() - t0) / 1000).toFixed(1);
      console.log(
        result.skipped
          ? `  skipped: ${result.skipped}`
          : `  done in ${took} s: ${
            result.figures.slice(0, 3).map((f) => `${f.metric.trim()} ${f.value.toFixed(1)} ${f.unit}`).join(
              "; ",
            )
          }`,
      );
    } catch (error) {
      console.error(`  ${name} failed: ${(error as Error).stack ?? error}`);
      results.push({
        name,
        title: name,
        figures: [],
        notes: [],
        skipped: `failed: ${(error as Error).message}`,
      });
    }
  };

  try {
    ctx = await openContext({
      runId,
      smoke: values.smoke!,
      sizes,
      mosquitto,
      redisUrl: values.redis!,
      mysqlUrl: values.mysql!,
      gatewayOverrides: overrides,
      signal: controller.signal,
    });
    const c = ctx;
    if (only.has("ceilings")) {
      await step("ceilings", async () => {
        const r = await runCeilings(c);
        ceilings = r.ceilings;
        return r.result;
      });
    }
    if (only.has("uplink-queue")) await step("uplink-queue", () => runUplinkQueue(c));
    if (only.has("worker-drain")) await step("worker-drain", () => runWorkerDrain(c));

    const shared = ["uplink-e2e", "uplink-rate", "stress", "downlink", "scale"].filter((s) => only.has(s));
    if (shared.length > 0 && !controller.signal.aborted) {
      const apiToken = `bench-${randomId(24)}`;
      // --split: the worker in a process of its own (GATEWAY_ROLES), so that its batches do not hold up
      // the uplink's event loop and the two use both cores.
      const gateway = await GatewayProcess.start(
        gatewayEnv(c, "full", values.split ? "uplink,downlink,api" : "uplink,worker,downlink,api", {
          API_TOKEN: apiToken,
        }),
      );
      if (values.split) {
        gateway.peers.push(
          await GatewayProcess.start(gatewayEnv(c, "full", "worker", { API_TOKEN: apiToken })),
        );
      }
      const queue = queueName(c, "full");
      const consoleStream = values.console ? await openConsoleStream(gateway.url, apiToken) : undefined;
      // --profile: one CPU profile per scenario of the shared gateway (its start-up in a profile of its own).
      await gateway.cutProfile(`${runId}-start`);
      const runShared = async (name: string, run: () => Promise<ScenarioResult>) => {
        await step(name, run);
        await gateway.cutProfile(`${runId}-${name}`);
      };
      try {
        if (only.has("uplink-e2e")) await runShared("uplink-e2e", () => runUplinkE2e(c, gateway, queue));
        if (only.has("uplink-rate")) await runShared("uplink-rate", () => runUplinkRate(c, gateway, queue));
        if (only.has("stress")) await runShared("stress", () => runStress(c, gateway, queue));
        if (only.has("downlink")) await runShared("downlink", () => runDownlink(c, gateway, apiToken));
        if (only.has("scale")) await runShared("scale", () => runScale(c, gateway));
      } finally {
        const streamed = await consoleStream?.close();
        if (streamed) {
          results.push({
            name: "console-stream",
            title: "Operator console open over scenarios 2b–5 (--console)",
            figures: [
              { metric: "event batches received", value: streamed.batches, unit: "" },
              { metric: "bytes received", value: streamed.bytes, unit: "B" },
            ],
            notes: [
              "One signed-in console, a process of its own, reading /console/events while the scenarios ran.",
            ],
          });
        }
        const lifetime = gateway.watcher.stop();
        const workerLifetime = gateway.peers[0]?.watcher.stop();
        await Promise.all(gateway.peers.map((p) => p.stop()));
        const status = await gateway.stop();
        if (status.code !== 0) {
          console.error(`The gateway exited with ${status.code}:\n${gateway.output.slice(-3000)}`);
        }
        results.push({
          name: "gateway-lifetime",
          title: "Gateway process over scenarios 2b–5",
          figures: [
            { metric: "gateway RSS peak", value: lifetime.peakRssMb, unit: "MB" },
            { metric: "gateway CPU peak (0.5 s)", value: lifetime.peakCpuPercent, unit: "%" },
            ...(workerLifetime
              ? [
                { metric: "worker process: gateway RSS peak", value: workerLifetime.peakRssMb, unit: "MB" },
                {
                  metric: "worker process: CPU peak (0.5 s)",
                  value: workerLifetime.peakCpuPercent,
                  unit: "%",
                },
              ]
              : []),
          ],
          notes: status.code === 0 ? [] : [`exited with ${status.code}`],
        });
      }
    }
    if (only.has("embedded")) await step("embedded", () => runEmbedded(c));
    if (only.has("gateways")) await step("gateways", () => runGateways(c));
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (ctx) await closeContext(ctx, values.mysql!).catch((e) => console.error(`cleanup: ${e}`));
    await mosquitto.close();
  }

  const goals = evaluateGoals(results, ceilings, sizes);
  const table = renderTable(results, ceilings, goals);
  const command = `deno task ${values.smoke ? "bench:smoke" : "bench"}${
    args.length ? " " + args.join(" ") : ""
  }`;
  console.log(`\n${command}\n\n${table}\n`);
  await Deno.mkdir(values.out!, { recursive: true });
  const file = `${values.out!.replace(/\/$/, "")}/${startedAt.toISOString().replace(/[:.]/g, "-")}.json`;
  const host = {
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    mosquitto: await versionOf("mosquitto", ["-h"]),
    redis: await versionOf("redis-server", ["--version"]),
    mariadb: await versionOf("mariadbd", ["--version"]),
    openFiles: limit,
  };
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      {
        runId,
        startedAt: startedAt.toISOString(),
        command,
        smoke: values.smoke,
        host,
        gatewaySettings: overrides,
        sizes,
        ceilings,
        lowestCeiling: lowestCeiling(ceilings),
        goals,
        scenarios: results,
        table,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`Results written to ${file}`);
  if (!values.smoke && !values.only && !values["keep-docs"]) {
    const doc = new URL("../../docs/benchmarks.md", import.meta.url);
    const when =
      `On ${startedAt.toISOString().slice(0, 10)}, Deno ${host.deno}, ${host.mosquitto}, ${host.redis}, ` +
      `${host.mariadb}, ${host.cores} cores shared by every process of the run; \`${command}\`.`;
    await Deno.writeTextFile(doc, withLastRun(await Deno.readTextFile(doc), `${when}\n\n${table}`));
    console.log("Figures written to docs/benchmarks.md");
  }
  return results.some((r) => r.skipped?.startsWith("failed")) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

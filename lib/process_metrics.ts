/**
 * @module process_metrics
 * The standard `process_*` metrics Prometheus users expect (the names of prom-client's
 * `collectDefaultMetrics` and of every official client), read with what the gateway's narrow
 * permission set allows. prom-client's own collector reads `/proc/self/*`, which Deno grants only
 * with `--allow-all`, and under the launcher reported 0 for memory and file descriptors; here
 * resident memory comes from `Deno.memoryUsage()`, CPU from `process.cpuUsage()`, the start time from
 * `performance.timeOrigin`. Open / max file descriptors need `/proc/self`: reported only where it can
 * be read (`deno task dev`, `-A`), left out rather than reported as 0 under `deno task start`.
 */
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { Counter, Gauge, type Registry } from "prom-client";

/** The version of this build, for `gateway_build_info` (deno.json's `version`). */
export interface BuildInfo {
  version: string;
}

function readable<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

export function registerProcessMetrics(registry: Registry, build: BuildInfo): void {
  const registers = [registry];
  const cpu = (name: string, help: string, part: (u: NodeJS.CpuUsage) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(part(process.cpuUsage()) / 1e6);
      },
    });
  cpu("process_cpu_user_seconds_total", "Total user CPU time spent in seconds", (u) => u.user);
  cpu("process_cpu_system_seconds_total", "Total system CPU time spent in seconds", (u) => u.system);
  cpu(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds",
    (u) => u.user + u.system,
  );
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes",
    registers,
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  const started = Math.round(performance.timeOrigin / 1000);
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds",
    registers,
  }).set(started);
  if (readable(() => readdirSync("/proc/self/fd")) !== undefined) {
    new Gauge({
      name: "process_open_fds",
      help: "Number of open file descriptors",
      registers,
      collect() {
        const fds = readable(() => readdirSync("/proc/self/fd"));
        if (fds) this.set(fds.length - 1); // without the one reading the directory
      },
    });
    const limits = readable(() => readFileSync("/proc/self/limits", "utf8"));
    const max = limits && /Max open files\s+(\d+)/.exec(limits);
    if (max) {
      new Gauge({ name: "process_max_fds", help: "Maximum number of open file descriptors", registers })
        .set(Number(max[1]));
    }
  }
  new Gauge({
    name: "gateway_build_info",
    help: "Always 1; the labels say which gateway version runs on which Deno and V8",
    labelNames: ["version", "deno", "v8"] as const,
    registers,
  }).set({ version: build.version, deno: Deno.version.deno, v8: Deno.version.v8 }, 1);
}

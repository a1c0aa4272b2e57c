/**
 * @module gateway_process
 * Runs the gateway under test as its own process (`deno run … main.ts`, configured by environment
 * only, as in production), so its RSS and CPU can be read from /proc and the load generator and
 * the benchmark's own polling do not share its event loop.
 */
import { loadConfig } from "../../config.ts";
import { v8Flags } from "../../launcher/v8_flags.ts";
import { CpuProfiler } from "./cpu_profiler.ts";
import { freePort, ProcWatcher, waitForPort } from "./services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Prometheus text → `name{labels}` → value, plus a sum over a name with matching labels. */
export class Scrape {
  constructor(
    readonly series: Map<string, { name: string; labels: Record<string, string>; value: number }>,
  ) {}

  static parse(text: string): Scrape {
    const series = new Map<string, { name: string; labels: Record<string, string>; value: number }>();
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels: Record<string, string> = {};
      for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]!] = l[2]!;
      }
      series.set(`${m[1]}${m[2] ?? ""}`, { name: m[1]!, labels, value: Number(m[4]) });
    }
    return new Scrape(series);
  }

  sum(name: string, match: Record<string, string> = {}): number {
    let total = 0;
    for (const s of this.series.values()) {
      if (s.name !== name) continue;
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
    return total;
  }
}

export class GatewayProcess {
  /** `--profile`: every gateway started runs with its inspector open and writes CPU profiles here. */
  static profileDir?: string;
  readonly #output: string[] = [];
  #profiler?: CpuProfiler;
  #label = "";
  #stopped?: Promise<Deno.CommandStatus>;
  /** Other processes of the same gateway (roles split over processes): scraped and summed with it. */
  readonly peers: GatewayProcess[] = [];

  private constructor(
    readonly child: Deno.ChildProcess,
    readonly httpPort: number,
    readonly watcher: ProcWatcher,
    /** `/metrics` needs it: the env's `API_TOKEN`, or one made for this run. */
    readonly apiToken: string,
  ) {}

  get pid(): number {
    return this.child.pid;
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get output(): string {
    return this.#output.join("");
  }

  /** Starts `main.ts` with `env` (and nothing else of ours) and waits until `/readyz` says ready. */
  static async start(env: Record<string, string>, readyTimeoutMs = 60_000): Promise<GatewayProcess> {
    const httpPort = freePort();
    const apiToken = env.API_TOKEN ?? `bench-${crypto.randomUUID()}`;
    const inherited: Record<string, string> = {};
    for (const name of ["PATH", "HOME", "DENO_DIR", "TZ"]) {
      const v = Deno.env.get(name);
      if (v !== undefined) inherited[name] = v;
    }
    const inspectPort = GatewayProcess.profileDir ? freePort() : undefined;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...(inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-write=./data",
        "--allow-sys",
        // The heap limits `deno task start` / the image give it (GATEWAY_HEAP_MB), so RSS is the shipped one.
        ...v8Flags(loadConfig(env).heapMb),
        "main.ts",
      ],
      cwd: ROOT,
      clearEnv: true,
      env: {
        ...inherited,
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: String(httpPort),
        LOG_LEVEL: "warning",
        GATEWAY_ENV_FILE: "", // never a developer's .env
        ...env,
        API_TOKEN: apiToken,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const gw = new GatewayProcess(child, httpPort, new ProcWatcher(child.pid), apiToken);
    gw.#drain(child.stdout);
    gw.#drain(child.stderr);
    let exited = false;
    child.status.then(() => exited = true);
    try {
      await waitForPort(httpPort, readyTimeoutMs);
      const deadline = performance.now() + readyTimeoutMs;
      for (;;) {
        if (exited) throw new Error("the gateway exited");
        const res = await fetch(`${gw.url}/readyz`).catch(() => null);
        const body = await res?.text();
        if (res?.status === 200) break;
        if (performance.now() > deadline) throw new Error(`not ready: ${body}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      if (inspectPort) {
        gw.#label = env.MQTT_CLIENT_ID ?? `gateway-${httpPort}`;
        gw.#profiler = await CpuProfiler.attach(inspectPort);
      }
    } catch (error) {
      await gw.stop();
      throw new Error(`The gateway did not start: ${(error as Error).message}\n${gw.output.slice(-3000)}`, {
        cause: error,
      });
    }
    return gw;
  }

  #drain(stream: ReadableStream<Uint8Array>): void {
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        this.#output.push(decoder.decode(chunk));
        if (this.#output.length > 200) this.#output.shift();
      }
    })().catch(() => {});
  }

  /** This process's counters only (not summed with its peers). */
  async scrapeSelf(): Promise<Scrape> {
    const res = await fetch(`${this.url}/metrics`);
    return Scrape.parse(await res.text());
  }

  async scrape(): Promise<Scrape> {
    const texts = await Promise.all([this, ...this.peers].map(async (p) => {
      const res = await fetch(`${p.url}/metrics`, { headers: { authorization: `Bearer ${p.apiToken}` } });
      return await res.text();
    }));
    const merged = Scrape.parse(texts[0]!);
    for (const text of texts.slice(1)) {
      for (const [key, s] of Scrape.parse(text).series) {
        const seen = merged.series.get(key);
        if (seen) seen.value += s.value;
        else merged.series.set(key, s);
      }
    }
    return merged;
  }

  /**
   * With `--profile`: writes the CPU profile since the last cut as `<profileDir>/<name>.cpuprofile`,
   * prints where its time went and starts the next (one profile per scenario of a shared gateway).
   */
  async cutProfile(name: string): Promise<void> {
    await this.#writeProfile(name, "cut");
  }

  /** Writes the profile in progress as `<profileDir>/<name>.cpuprofile` and logs its summary. */
  async #writeProfile(name: string, then: "cut" | "close"): Promise<void> {
    const profiler = this.#profiler;
    if (!profiler || !GatewayProcess.profileDir) return;
    const path = `${GatewayProcess.profileDir}/${name}.cpuprofile`;
    const shares = await (then === "cut" ? profiler.cut(path) : profiler.close(path));
    if (shares) console.log(CpuProfiler.describe(name, shares));
  }

  /** SIGTERM (graceful: finishes the batch in hand), then SIGKILL after `graceMs`. */
  stop(graceMs = 15_000): Promise<Deno.CommandStatus> {
    this.#stopped ??= (async () => {
      // --profile: the rest of its life (a scenario's own gateway: all of it).
      await this.#writeProfile(`${this.#label}-last`, "close")
        .catch((error) => console.error(`profile ${this.#label}: ${error}`));
      try {
        this.child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          this.child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, graceMs);
      const status = await this.child.status;
      clearTimeout(timer);
      return status;
    })();
    return this.#stopped;
  }
}

/**
 * @module load
 * The load generator of the benchmarks: `tools/sim/simulate.ts --json --wait-go` in a process of its
 * own. It connects its machines, reports "connected", starts sending on "go", and reports each
 * second and at the end as JSON lines on standard output.
 */
import type { FleetStats } from "../sim/fleet.ts";
import { ProcWatcher } from "./services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export interface LoadDone {
  stats: FleetStats;
  seconds: number;
  sent: number;
  send_rate: number;
  puback_ms: { p50: number; p99: number };
  command_ms: { count: number; p50: number; p99: number };
  command_latencies: number[];
  /** Epoch ms when the summary was printed. */
  t: number;
}

/** The arguments every scenario's fleet starts with: broker, MQTT version, size, connect pace. */
export function fleetArgs(
  o: { url: string; machines: number; protocol?: 4 | 5; connectRate?: number },
): string[] {
  return [
    "--url",
    o.url,
    "--protocol",
    String(o.protocol ?? 5),
    "--machines",
    String(o.machines),
    "--connect-rate",
    String(o.connectRate ?? 5000),
  ];
}

export class LoadGenerator {
  readonly connected: Promise<{ stats: FleetStats; seconds: number }>;
  readonly done: Promise<LoadDone>;
  readonly watcher: ProcWatcher;
  /** Latest per-second statistics. */
  last?: FleetStats;
  /** RSS and CPU of the load generator, once stopped. */
  proc?: ReturnType<ProcWatcher["stop"]>;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stderr: string[] = [];

  /** `args` are simulate.ts flags; `--json --wait-go` are added. */
  constructor(args: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-env",
        "tools/sim/simulate.ts",
        "--json",
        "--wait-go",
        ...args,
      ],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.watcher = new ProcWatcher(child.pid);
    this.#writer = child.stdin.getWriter();
    let onConnected!: (v: { stats: FleetStats; seconds: number }) => void;
    let onDone!: (v: LoadDone) => void;
    let onFail!: (e: Error) => void;
    this.connected = new Promise((resolve, reject) => {
      onConnected = resolve;
      onFail = reject;
    });
    const failDone = { reject: (_: Error) => {} };
    this.done = new Promise((resolve, reject) => {
      onDone = resolve;
      failDone.reject = reject;
    });
    // Callers may await only one of the two.
    this.connected.catch(() => {});
    this.done.catch(() => {});
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr.push(decoder.decode(chunk));
        if (this.#stderr.length > 50) this.#stderr.shift();
      }
    })().catch(() => {});
    (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const chunk of child.stdout) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          let event: { event?: string; stats?: FleetStats };
          try {
            event = JSON.parse(line);
          } catch {
            continue;
          }
          if (event.stats) this.last = event.stats;
          if (event.event === "connected") onConnected(event as { stats: FleetStats; seconds: number });
          if (event.event === "done") onDone(event as unknown as LoadDone);
        }
      }
      const status = await child.status;
      const error = new Error(
        `The load generator exited (${status.code}): ${this.#stderr.join("").slice(-2000)}`,
      );
      onFail(error);
      failDone.reject(error);
    })().catch((error) => {
      onFail(error);
      failDone.reject(error);
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(`${line}\n`)).catch(() => {});
  }

  go(): Promise<void> {
    return this.#send("go");
  }

  /** Asks it to stop (steady mode), waits for its summary, and for the process to end. */
  async stop(timeoutMs = 30_000): Promise<LoadDone | null> {
    await this.#send("stop");
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutMs);
    const done = await this.done.catch(() => null);
    await this.#child.status;
    clearTimeout(timer);
    this.proc ??= this.watcher.stop();
    return done;
  }
}

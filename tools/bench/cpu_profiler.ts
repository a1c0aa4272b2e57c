/**
 * @module cpu_profiler
 * `deno task bench --profile`: records V8 CPU profiles of a gateway process through its inspector
 * (the process runs with `--inspect=127.0.0.1:<port>`), 0.5 ms sampling. {@link CpuProfiler.cut}
 * ends one profile (a scenario's), writes it as a `.cpuprofile` (Chrome DevTools opens it) and
 * starts the next; {@link CpuProfiler.close} writes the last and detaches.
 */
import { type CpuProfile, type ProfileShares, profileShares } from "./profile_shares.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

export class CpuProfiler {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 0;
  #closed = false;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data));
      const call = m.id === undefined ? undefined : this.#pending.get(m.id);
      if (!call) return;
      this.#pending.delete(m.id);
      if (m.error) call.reject(new Error(`inspector: ${m.error.message}`));
      else call.resolve(m.result);
    };
    ws.onclose = () => {
      for (const call of this.#pending.values()) call.reject(new Error("inspector connection closed"));
      this.#pending.clear();
    };
  }

  /** Connects to the inspector on `port` and starts the first profile. */
  static async attach(port: number): Promise<CpuProfiler> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      webSocketDebuggerUrl: string;
    }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target on port ${port}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot open the inspector at ${url}`));
    });
    const profiler = new CpuProfiler(ws);
    await profiler.#call("Profiler.enable");
    await profiler.#call("Profiler.setSamplingInterval", { interval: 500 });
    await profiler.#call("Profiler.start");
    return profiler;
  }

  /** Ends the profile in progress, writes it to `path` and starts the next. */
  async cut(path: string): Promise<ProfileShares> {
    const shares = await this.#write(path);
    await this.#call("Profiler.start");
    return shares;
  }

  /** Writes the last profile to `path` and detaches; idempotent (later calls write nothing). */
  async close(path: string): Promise<ProfileShares | undefined> {
    if (this.#closed) return undefined;
    this.#closed = true;
    try {
      return await this.#write(path);
    } finally {
      this.#ws.close();
    }
  }

  async #write(path: string): Promise<ProfileShares> {
    const { profile } = await this.#call("Profiler.stop") as { profile: CpuProfile };
    await Deno.writeTextFile(path, JSON.stringify(profile));
    return profileShares(profile, ROOT);
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** One line per file above `minPercent` (the project's files and npm packages), for the log. */
  static describe(label: string, shares: ProfileShares, minPercent = 1): string {
    const runtime = Object.entries(shares.runtime).map(([k, v]) => `${k} ${v.toFixed(1)} %`).join(", ");
    const files = shares.files.filter((f) => f.percent >= minPercent && !f.file.startsWith("ext:"))
      .map((f) => `    ${f.percent.toFixed(1).padStart(5)} %  ${f.file}`);
    return [`  profile ${label}: ${shares.samples} samples; ${runtime}`, ...files].join("\n");
  }
}

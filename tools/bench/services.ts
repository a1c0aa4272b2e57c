/**
 * @module services
 * What the benchmarks start and watch outside their own process: a private Mosquitto (the shared
 * one at 1883 keeps the default `max_queued_messages 1000` and drops QoS 1 messages under load),
 * free ports, and per-process RSS / CPU read from `/proc/<pid>` (the benchmark may read /proc; the
 * gateway never does).
 */

/** A TCP port nobody listens on right now (race-free enough for a benchmark on one host). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Resolves once something accepts TCP connections on `port`, or throws after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (performance.now() > deadline) {
        throw new Error(`Nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`, { cause: error });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface ProcSample {
  /** Resident set size, bytes. */
  rss: number;
  /** User + system CPU time, seconds. */
  cpu: number;
}

/**
 * Reads /proc files through `cat`: Deno grants /proc only with --allow-all, and the benchmark
 * keeps to named permissions (it may already run `cat`, `deno` and `mosquitto`).
 */
async function readProcFiles(paths: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command("cat", { args: paths, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/** RSS and CPU time of a process from /proc; null once it is gone. */
export async function readProc(pid: number): Promise<ProcSample | null> {
  const text = await readProcFiles([`/proc/${pid}/status`, `/proc/${pid}/stat`]);
  if (!text) return null;
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const stat = text.slice(text.lastIndexOf("\n", text.length - 2) + 1);
  // Fields after the command name (which may hold spaces) start at ") ".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return { rss: rssKb * 1024, cpu: (utime + stime) / CLOCK_TICKS };
}

/** The soft and hard open-file limits of a process. */
export async function openFileLimit(pid: number = Deno.pid): Promise<{ soft: number; hard: number } | null> {
  const limits = await readProcFiles([`/proc/${pid}/limits`]);
  const m = limits && /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(limits);
  if (!m) return null;
  const n = (s: string) => s === "unlimited" ? Infinity : Number(s);
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/** Samples a process's RSS and CPU every `everyMs`; `stop()` returns peak RSS and mean CPU. */
export class ProcWatcher {
  readonly samples: { at: number; rss: number; cpuPercent: number }[] = [];
  #timer: ReturnType<typeof setInterval>;
  #last: { at: number; cpu: number } | null = null;
  #first: { at: number; cpu: number } | null = null;
  #busy = false;
  #stopped = false;

  constructor(readonly pid: number, everyMs = 500) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  async #sample(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    this.#busy = true;
    try {
      const s = await readProc(this.pid);
      if (!s || this.#stopped) return;
      const at = performance.now();
      const cpuPercent = this.#last ? ((s.cpu - this.#last.cpu) / ((at - this.#last.at) / 1000)) * 100 : 0;
      this.samples.push({ at, rss: s.rss, cpuPercent: this.#last ? cpuPercent : NaN });
      this.#first ??= { at, cpu: s.cpu };
      this.#last = { at, cpu: s.cpu };
    } finally {
      this.#busy = false;
    }
  }

  stop(): { peakRssMb: number; meanCpuPercent: number; peakCpuPercent: number } {
    this.#stopped = true;
    clearInterval(this.#timer);
    const peakRss = Math.max(0, ...this.samples.map((s) => s.rss));
    const span = this.#first && this.#last ? (this.#last.at - this.#first.at) / 1000 : 0;
    const meanCpu = span > 0 ? ((this.#last!.cpu - this.#first!.cpu) / span) * 100 : NaN;
    const cpus = this.samples.map((s) => s.cpuPercent).filter(Number.isFinite);
    return {
      peakRssMb: this.samples.length ? peakRss / 2 ** 20 : NaN,
      meanCpuPercent: meanCpu,
      peakCpuPercent: cpus.length ? Math.max(...cpus) : NaN,
    };
  }
}

/** A private Mosquitto on a free port, tuned so that it never drops QoS 1 messages under load. */
export class Mosquitto {
  private constructor(
    readonly port: number,
    readonly child: Deno.ChildProcess,
    readonly dir: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid;
  }

  static async start(): Promise<Mosquitto> {
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "bench-mosquitto-" });
    const conf = [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence false",
      // Unlimited queues: a slow subscriber must slow the test down, never lose messages.
      "max_queued_messages 0",
      "max_queued_bytes 0",
      // Enough QoS 1 messages in flight per client that the broker never waits on one PUBACK.
      "max_inflight_messages 1000",
      "max_connections -1",
      "set_tcp_nodelay true",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      "",
    ].join("\n");
    await Deno.writeTextFile(`${dir}/mosquitto.conf`, conf);
    const child = new Deno.Command("mosquitto", {
      args: ["-c", `${dir}/mosquitto.conf`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Keep only the tail of its log, for the error message if it dies.
    const log: string[] = [];
    (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        log.push(decoder.decode(chunk));
        if (log.length > 50) log.shift();
      }
    })().catch(() => {});
    const mosquitto = new Mosquitto(port, child, dir);
    try {
      await waitForPort(port);
    } catch (error) {
      await mosquitto.close();
      throw new Error(`Mosquitto did not start: ${log.join("")}`, { cause: error });
    }
    return mosquitto;
  }

  async close(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await this.child.status;
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

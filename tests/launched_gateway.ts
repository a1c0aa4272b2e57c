/**
 * @module launched_gateway
 * Test helper: the gateway as a real process started through the launcher (`launch.ts` or the
 * bundled `launch.js`), with a clean environment, its output collected for failure messages, its
 * `/healthz` polled, and SIGTERM → exit code.
 */

export const REPO_ROOT = new URL("../", import.meta.url).pathname;

/** A TCP port nobody listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** What a process needs of the outside environment (deno's cache), and nothing of the gateway's. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * The launcher's own flags from deno.json's `start` task (`deno run <flags> launch.ts main.ts`),
 * without `--env-file`: a developer's `.env` must not leak into a test.
 */
export async function startTaskFlags(): Promise<string[]> {
  const task: string = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`)).tasks.start;
  const words = task.trim().split(/\s+/);
  if (
    words[0] !== "deno" || words[1] !== "run" || words.at(-2) !== "launch.ts" || words.at(-1) !== "main.ts"
  ) {
    throw new Error(`the start task is not "deno run <flags> launch.ts main.ts": ${task}`);
  }
  return words.slice(2, -2).filter((w) => !w.startsWith("--env-file"));
}

export class LaunchedGateway implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly port: number;
  /** The gateway's configuration, as given. */
  readonly env: Record<string, string>;
  #output = "";
  readonly #drained: Promise<void>;
  #status?: Promise<Deno.CommandStatus>;

  /** `deno run <denoFlags> <launcher> <entry>` in `cwd`; `env` is the gateway's configuration. */
  constructor(options: {
    cwd: string;
    launcher: string;
    entry: string;
    env: Record<string, string>;
    denoFlags?: string[];
  }) {
    this.port = Number(options.env.HTTP_PORT);
    this.env = options.env;
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...(options.denoFlags ?? ["--allow-env", "--allow-read", "--allow-run"]),
        options.launcher,
        options.entry,
      ],
      cwd: options.cwd,
      clearEnv: true,
      env: { ...baseEnv(), GATEWAY_ENV_FILE: "", ...options.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const decoder = () => new TextDecoderStream();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(decoder())) this.#output += text;
    };
    this.#drained = Promise.all([collect(this.child.stdout), collect(this.child.stderr)]).then(() => {});
  }

  get output(): string {
    return this.#output;
  }

  /** Resolves when `GET /healthz` answers 200; throws with the process output if it exits or times out. */
  async healthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    this.status.then(() => exited = true);
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        const body = await res.text();
        if (res.status === 200) return;
        void body;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`The gateway ${exited ? "exited" : "did not answer /healthz in time"}:\n${this.#output}`);
  }

  /** The command line of the process the launcher started (`ps`): what the gateway runs with. */
  async gatewayCommandLine(): Promise<string[]> {
    const { stdout } = await new Deno.Command("ps", {
      args: ["-o", "args=", "--ppid", String(this.child.pid)],
    })
      .output();
    const lines = new TextDecoder().decode(stdout).trim().split("\n").filter(Boolean);
    if (lines.length !== 1) {
      throw new Error(`launcher ${this.child.pid} has children ${JSON.stringify(lines)}`);
    }
    return lines[0]!.split(/\s+/); // the flags and paths here have no spaces
  }

  /** GET `path`, with the gateway's `API_TOKEN`, or the one it printed when it has none. */
  async get(path: string): Promise<{ status: number; body: unknown }> {
    const token = this.env.API_TOKEN ?? /this run's bearer token for [^:]*: (\S+)/.exec(this.#output)?.[1];
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: res.status, body: await res.json() };
  }

  get status(): Promise<Deno.CommandStatus> {
    this.#status ??= this.child.status;
    return this.#status;
  }

  /** SIGTERM, then the exit code (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 15_000): Promise<number> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // exited already
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        try {
          this.child.kill("SIGKILL");
        } catch { /* exited */ }
        resolve();
      }, timeoutMs);
    });
    const status = await Promise.race([this.status, killed.then(() => this.status)]);
    clearTimeout(timer);
    await this.#drained;
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop(5000);
  }
}

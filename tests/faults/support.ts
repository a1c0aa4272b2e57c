/**
 * @module support
 * Shared helpers of the fault-injection suite. Every scenario runs against services it owns: a
 * private mosquitto and a private redis-server on free ports, a TCP proxy in front of the shared
 * MariaDB (so the test can cut the database without touching it), a fresh database
 * `gw_fault_<random>` on that MariaDB, and the gateway itself as a `deno run main.ts` subprocess.
 * Only processes started here are ever killed, by their own handle.
 *
 * Machines are mqtt.js clients with persistent sessions publishing QoS 1: each waits for its PUBACK
 * and, after a reconnect, mqtt.js sends again whatever was not acknowledged (same client object,
 * `clean: false`). Transaction ids and quantities are known, so the final check is exact.
 */
import { Redis } from "ioredis";
import mqtt, { type MqttClient } from "mqtt";
import mysql from "mysql2/promise";
import { binaryAsText } from "../../db/mysql/binary_as_text.ts";
import { SERVICES } from "../support.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;
export const MYSQL_ADMIN_URL = SERVICES.mysqlAdmin;
const MYSQL_HOST = new URL(SERVICES.mysqlAdmin).hostname;
const MYSQL_PORT = Number(new URL(SERVICES.mysqlAdmin).port || 3306);
/** Where the tests' MariaDB listens (the shared one, or the private one `deno task test` started). */
export const MYSQL_ADDRESS = { hostname: MYSQL_HOST, port: MYSQL_PORT };

// ---------------------------------------------------------------------------------------------
// Small utilities

/** A short random suffix for names (databases, client ids, share groups, serials). */
export function randomSuffix(length = 8): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, length);
}

/** mulberry32: a seeded PRNG, so a failing run can be replayed with `FAULT_SEED=<seed>`. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of this run's random choices: `FAULT_SEED` if set, else a fresh one (printed). */
export function faultSeed(scenario: string): number {
  const given = Deno.env.get("FAULT_SEED");
  const seed = given ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[${scenario}] FAULT_SEED=${seed}`);
  return seed;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Polls `probe` until it returns something other than `undefined`/`false`, or fails after
 * `timeoutMs` with `what` and the last value or error seen.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await delay(intervalMs);
  }
}

export async function canConnect(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** fetch with a timeout that leaves no timer behind; the body is always read. */
export async function fetchText(
  url: string,
  timeoutMs = 3000,
  token?: string,
): Promise<{ status: number; body: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`GET ${url} timed out`)), timeoutMs);
  try {
    const response = await fetch(url, {
      signal: controller.signal,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: response.status, body: await response.text() };
  } finally {
    clearTimeout(timer);
  }
}

/** A temporary directory removed (with everything in it) on dispose. */
export class TempDir implements AsyncDisposable {
  private constructor(readonly path: string) {}
  static async create(prefix: string): Promise<TempDir> {
    return new TempDir(await Deno.makeTempDir({ prefix: `gw-fault-${prefix}-` }));
  }
  file(name: string): string {
    return `${this.path}/${name}`;
  }
  /** Removes the directory, unless `FAULT_KEEP=1` asks to keep it (logs) for a post-mortem. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (Deno.env.get("FAULT_KEEP") === "1") {
      console.log(`Kept ${this.path} (FAULT_KEEP=1)`);
      return;
    }
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Processes the test starts (and is the only one to stop)

/** A child process whose stdout and stderr go to a log file, stopped only through this handle. */
export class ManagedProcess {
  readonly #child: Deno.ChildProcess;
  readonly #exited: Promise<Deno.CommandStatus>;
  #status?: Deno.CommandStatus;

  private constructor(
    readonly name: string,
    child: Deno.ChildProcess,
    readonly logPath: string,
    pipes: Promise<unknown>,
  ) {
    this.#child = child;
    this.#exited = (async () => {
      const status = await child.status;
      await pipes;
      this.#status = status;
      return status;
    })();
  }

  static async spawn(
    name: string,
    command: string,
    args: string[],
    options: { logPath: string; cwd?: string; env?: Record<string, string>; clearEnv?: boolean },
  ): Promise<ManagedProcess> {
    const child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.clearEnv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const log = await Deno.open(options.logPath, { append: true, create: true });
    const pipes = Promise.allSettled([copyTo(child.stdout, log), copyTo(child.stderr, log)])
      .finally(() => log.close());
    return new ManagedProcess(name, child, options.logPath, pipes);
  }

  get pid(): number {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#status === undefined;
  }

  /** Sends `signal` without waiting (SIGSTOP / SIGCONT to freeze and thaw it). */
  signal(signal: Deno.Signal): void {
    if (this.running) this.#child.kill(signal);
  }

  /** Resolves when the process has exited and its output is flushed. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#exited;
  }

  /** Sends `signal` (if still running) and waits for the exit; SIGKILL after `graceMs`. */
  async stop(signal: Deno.Signal = "SIGKILL", graceMs = 10_000): Promise<Deno.CommandStatus> {
    if (this.running) {
      try {
        this.#child.kill(signal);
      } catch { /* already gone */ }
      if (signal !== "SIGKILL") {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), graceMs));
        const outcome = await Promise.race([this.#exited, timeout]);
        clearTimeout(timer);
        if (outcome === "timeout" && this.running) {
          console.warn(`[${this.name}] did not stop on ${signal} within ${graceMs} ms: SIGKILL`);
          try {
            this.#child.kill("SIGKILL");
          } catch { /* already gone */ }
        }
      }
    }
    return await this.#exited;
  }

  /**
   * Resident memory in kB, or undefined once the process is gone. From /proc/<pid>/status (Linux),
   * which Deno lets a test read only with --allow-all; else from `ps` (--allow-run is enough).
   */
  async rssKb(): Promise<number | undefined> {
    if (!this.running) return undefined;
    try {
      const status = await Deno.readTextFile(`/proc/${this.pid}/status`);
      const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
      return match ? Number(match[1]) : undefined;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)) {
        return undefined;
      }
    }
    const { success, stdout } = await new Deno.Command("ps", {
      args: ["-o", "rss=", "-p", String(this.pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    const kb = Number(new TextDecoder().decode(stdout).trim());
    return success && kb > 0 ? kb : undefined;
  }

  async logTail(lines = 40): Promise<string> {
    try {
      const text = await Deno.readTextFile(this.logPath);
      return text.split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/** Writes each chunk as it comes (so a `kill -9` leaves the log complete up to that moment). */
async function copyTo(stream: ReadableStream<Uint8Array>, file: Deno.FsFile): Promise<void> {
  for await (const chunk of stream) {
    let offset = 0;
    while (offset < chunk.length) offset += await file.write(chunk.subarray(offset));
  }
}

// ---------------------------------------------------------------------------------------------
// Private mosquitto

export interface MosquittoOptions {
  /** Keep sessions and queued messages across a graceful restart (SIGTERM writes the db). */
  persistence?: boolean;
  /** Per-client in-flight window towards a subscriber (mosquitto's default is 20). */
  maxInflight?: number;
}

/** A private mosquitto on a free port. `restart()` brings it back on the same port. */
export class Mosquitto {
  #process?: ManagedProcess;
  #starts = 0;
  private constructor(readonly dir: string, readonly port: number, readonly configPath: string) {}

  static async start(dir: string, options: MosquittoOptions = {}): Promise<Mosquitto> {
    const port = freePort();
    const configPath = `${dir}/mosquitto.conf`;
    const lines = [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      // 0 = no limit: QoS 1 messages queued for an offline session must never be dropped.
      "max_queued_messages 0",
      `max_inflight_messages ${options.maxInflight ?? 20}`,
      "log_dest stdout",
      "log_type error",
      "log_type warning",
      "log_type notice",
      "connection_messages true",
      "log_timestamp_format %H:%M:%S",
    ];
    if (options.persistence) {
      lines.push("persistence true", `persistence_location ${dir}/`, "persistence_file mosquitto.db");
      lines.push("autosave_interval 3600");
    } else {
      lines.push("persistence false");
    }
    // As root, mosquitto would switch to the "mosquitto" user, which cannot write our temp dir.
    if (Deno.uid() === 0) lines.push("user root");
    await Deno.writeTextFile(configPath, lines.join("\n") + "\n");
    const broker = new Mosquitto(dir, port, configPath);
    await broker.#launch();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#process?.running ?? false;
  }

  async #launch(): Promise<void> {
    this.#starts++;
    const process = await ManagedProcess.spawn("mosquitto", "mosquitto", ["-c", this.configPath], {
      logPath: `${this.dir}/mosquitto.log`,
    });
    this.#process = process;
    await waitFor(`mosquitto on port ${this.port}`, async () => {
      if (!process.running) throw new Error(`mosquitto exited: ${await process.logTail(10)}`);
      return await canConnect(this.port);
    }, { timeoutMs: 10_000, intervalMs: 50 });
  }

  /** SIGTERM lets mosquitto save its sessions (with persistence); SIGKILL does not. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    await this.#process?.stop(signal);
  }

  async restart(signal: Deno.Signal = "SIGTERM", downMs = 0): Promise<void> {
    await this.stop(signal);
    if (downMs > 0) await delay(downMs);
    await this.#launch();
  }

  logTail(lines = 30): Promise<string> {
    return this.#process?.logTail(lines) ?? Promise.resolve("");
  }

  async close(): Promise<void> {
    await this.stop("SIGKILL");
  }
}

// ---------------------------------------------------------------------------------------------
// Private redis-server

export interface RedisOptions {
  /**
   * Append-only file with fsync on every write: what a Redis restart needs to keep queued jobs.
   * Production Redis holding the gateway's queue must be configured durably in the same way.
   */
  durable?: boolean;
}

export class RedisServer {
  #process?: ManagedProcess;
  private constructor(readonly dir: string, readonly port: number, readonly durable: boolean) {}

  static async start(dir: string, options: RedisOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(dir, freePort(), options.durable ?? false);
    await server.#launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  async #launch(): Promise<void> {
    const args = [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--dir",
      this.dir,
      "--daemonize",
      "no",
      "--protected-mode",
      "no",
      "--appendonly",
      this.durable ? "yes" : "no",
    ];
    if (this.durable) args.push("--appendfsync", "always");
    const process = await ManagedProcess.spawn("redis", "redis-server", args, {
      logPath: `${this.dir}/redis.log`,
    });
    this.#process = process;
    await waitFor(`redis on port ${this.port}`, async () => {
      if (!process.running) throw new Error(`redis-server exited: ${await process.logTail(10)}`);
      return await this.#pingRaw();
    }, { timeoutMs: 10_000, intervalMs: 50 });
  }

  /** PING over a raw socket (no client library, nothing left behind). */
  async #pingRaw(): Promise<boolean> {
    let conn: Deno.TcpConn | undefined;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
    } catch {
      return false;
    } finally {
      try {
        conn?.close();
      } catch { /* closed */ }
    }
  }

  async stop(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await this.#process?.stop(signal);
  }

  async restart(signal: Deno.Signal = "SIGKILL", downMs = 0): Promise<void> {
    await this.stop(signal);
    if (downMs > 0) await delay(downMs);
    await this.#launch();
  }

  /** SIGSTOP: connections stay open but nothing is answered, as a hung server. */
  freeze(): void {
    this.#process?.signal("SIGSTOP");
  }

  thaw(): void {
    this.#process?.signal("SIGCONT");
  }

  /** Runs `fn` with a short-lived client (closed afterwards, even on failure). */
  async with<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
    redis.on("error", () => {});
    try {
      await redis.connect();
      return await fn(redis);
    } finally {
      await redis.quit().catch(() => redis.disconnect());
    }
  }

  /** Jobs of `queue` not finished yet (ready, delayed, in processing lists) and dead letters. */
  depth(queue: string): Promise<{ pending: number; dead: number }> {
    return this.with(async (redis) => {
      const processing = await redis.keys(`{${queue}}:processing:*`);
      const tx = redis.multi().llen(queue).zcard(`{${queue}}:delayed`).llen(`{${queue}}:dead`);
      for (const key of processing) tx.llen(key);
      const n = ((await tx.exec()) ?? []).map(([, v]) => Number(v ?? 0));
      const pending = n[0]! + n[1]! + n.slice(3).reduce((a, b) => a + b, 0);
      return { pending, dead: n[2]! };
    });
  }

  /** Every key of this Redis with its type and size, for a post-mortem. */
  describe(): Promise<string> {
    return this.with(async (redis) => {
      const lines: string[] = [];
      for (const key of (await redis.keys("*")).sort()) {
        const type = await redis.type(key);
        const size = type === "list"
          ? await redis.llen(key)
          : type === "zset"
          ? await redis.zcard(key)
          : type === "set"
          ? await redis.scard(key)
          : type === "hash"
          ? await redis.hlen(key)
          : "";
        lines.push(`${key} (${type}) ${size}`);
      }
      return lines.join("\n");
    });
  }

  /** The dead letters of `queue`, parsed. */
  deadLetters(queue: string): Promise<{ job: string; reason: string }[]> {
    return this.with(async (redis) =>
      (await redis.lrange(`{${queue}}:dead`, 0, -1)).map((s) =>
        JSON.parse(s) as { job: string; reason: string }
      )
    );
  }

  logTail(lines = 30): Promise<string> {
    return this.#process?.logTail(lines) ?? Promise.resolve("");
  }

  async close(): Promise<void> {
    await this.stop("SIGKILL");
  }
}

// ---------------------------------------------------------------------------------------------
// TCP proxy in front of MariaDB

/**
 * Forwards `127.0.0.1:<port>` to a target. `cut()` makes the target unreachable the way a network
 * partition does: open connections are reset and new ones are accepted but never answered (a
 * client only finds out by its connect timeout) until `restore()`.
 */
export class TcpProxy {
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<{ a: Deno.TcpConn; b: Deno.TcpConn }>();
  readonly #held = new Set<Deno.TcpConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptLoop: Promise<void>;
  #cut = false;
  #closed = false;
  connections = 0;

  constructor(readonly target: { hostname: string; port: number }) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#acceptLoop = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (this.#closed) {
          safeClose(conn);
          continue;
        }
        if (this.#cut) {
          this.#held.add(conn);
          continue;
        }
        this.#track(this.#forward(conn));
      }
    } catch {
      // listener closed
    }
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #forward(a: Deno.TcpConn): Promise<void> {
    let b: Deno.TcpConn;
    try {
      b = await Deno.connect(this.target);
    } catch {
      safeClose(a);
      return;
    }
    if (this.#cut || this.#closed) {
      safeClose(a);
      safeClose(b);
      return;
    }
    this.connections++;
    const pair = { a, b };
    this.#pairs.add(pair);
    await Promise.all([pump(a, b), pump(b, a)]);
    this.#pairs.delete(pair);
    safeClose(a);
    safeClose(b);
  }

  /** Resets every open connection and holds new ones unanswered. */
  cut(): void {
    this.#cut = true;
    for (const { a, b } of this.#pairs) {
      safeClose(a);
      safeClose(b);
    }
  }

  /** Forwards again; connections held during the cut are closed (their clients gave up). */
  restore(): void {
    this.#cut = false;
    for (const conn of this.#held) safeClose(conn);
    this.#held.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.cut();
    for (const conn of this.#held) safeClose(conn);
    this.#held.clear();
    try {
      this.#listener.close();
    } catch { /* closed */ }
    await this.#acceptLoop;
    await Promise.allSettled([...this.#tasks]);
  }
}

function safeClose(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      let offset = 0;
      while (offset < n) offset += await to.write(buf.subarray(offset, n));
    }
    await to.closeWrite();
  } catch {
    // reset or closed by cut(): the other direction ends too
    safeClose(from);
    safeClose(to);
  }
}

// ---------------------------------------------------------------------------------------------
// A fresh database on the shared MariaDB

export interface Ledger {
  count: number;
  distinct: number;
  /** `serial/slot` → stock. */
  stock: Map<string, number>;
}

export class TestDatabase {
  readonly #pool: mysql.Pool;
  #dropped = false;
  private constructor(readonly name: string, pool: mysql.Pool) {
    this.#pool = pool;
  }

  static async create(): Promise<TestDatabase> {
    const name = `gw_fault_${randomSuffix(10)}`;
    const admin = await mysql.createConnection({ host: MYSQL_HOST, port: MYSQL_PORT, user: "root" });
    try {
      await admin.query(`CREATE DATABASE \`${name}\``);
    } finally {
      await admin.end();
    }
    const pool = mysql.createPool({
      host: MYSQL_HOST,
      port: MYSQL_PORT,
      user: "root",
      database: name,
      connectionLimit: 2,
      typeCast: binaryAsText,
    });
    return new TestDatabase(name, pool);
  }

  /** The URL the gateway uses; through a proxy when `port` is given. */
  url(port = MYSQL_PORT): string {
    return `mysql://root@127.0.0.1:${port}/${this.name}`;
  }

  async ledger(): Promise<Ledger> {
    const [[totals]] = await this.#pool.query(
      "SELECT COUNT(*) AS n, COUNT(DISTINCT serial_no, transaction_id) AS d FROM transactions",
    ) as unknown as [[{ n: number; d: number }]];
    const [slots] = await this.#pool.query(
      "SELECT serial_no, slot_no, stock FROM machine_slots",
    ) as unknown as [{ serial_no: string; slot_no: number; stock: number }[]];
    const stock = new Map<string, number>();
    for (const s of slots) stock.set(`${s.serial_no}/${s.slot_no}`, Number(s.stock));
    return { count: Number(totals.n), distinct: Number(totals.d), stock };
  }

  async transactionCount(): Promise<number> {
    try {
      const [[row]] = await this.#pool.query("SELECT COUNT(*) AS n FROM transactions") as unknown as [
        [{ n: number }],
      ];
      return Number(row.n);
    } catch (error) {
      // Before the gateway's first start has migrated, the table does not exist yet.
      if ((error as { code?: string }).code === "ER_NO_SUCH_TABLE") return 0;
      throw error;
    }
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const [rows] = await this.#pool.query(sql, params);
    return rows as T[];
  }

  async close(): Promise<void> {
    if (this.#dropped) return;
    this.#dropped = true;
    try {
      await this.#pool.query(`DROP DATABASE IF EXISTS \`${this.name}\``);
    } finally {
      await this.#pool.end();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The gateway as a subprocess

export interface GatewaySettings {
  mqttUrl: string;
  redisUrl: string;
  databaseUrl: string;
  /** The same id across restarts: the persistent session and the worker's processing lists. */
  clientId: string;
  shareGroup: string;
  incomingQueue: string;
  extra?: Record<string, string>;
}

/** Builds settings with unique names for one scenario. */
export function gatewaySettings(
  base: Pick<GatewaySettings, "mqttUrl" | "redisUrl" | "databaseUrl"> & Partial<GatewaySettings>,
): GatewaySettings {
  const suffix = randomSuffix();
  return {
    clientId: `gw-fault-${suffix}`,
    shareGroup: `faults_${suffix}`,
    incomingQueue: `faults:${suffix}:incoming`,
    ...base,
  };
}

export class GatewayProcess {
  private constructor(
    readonly process: ManagedProcess,
    readonly httpPort: number,
    readonly settings: GatewaySettings,
    /** `/mqtt/status` and `/metrics` need it. */
    readonly apiToken: string,
  ) {}

  /** Starts `deno run main.ts` and waits until `/healthz` answers and the broker is connected. */
  static async start(dir: string, settings: GatewaySettings, logName = "gateway"): Promise<GatewayProcess> {
    const httpPort = freePort();
    const { process, apiToken } = await GatewayProcess.#spawn(dir, settings, logName, httpPort, []);
    const gateway = new GatewayProcess(process, httpPort, settings, apiToken);
    try {
      await waitFor(`${logName} to be up and connected`, async () => {
        if (!process.running) throw new Error(`gateway exited: ${await process.logTail(20)}`);
        const status = await gateway.status();
        return status.connected === true;
      }, { timeoutMs: 30_000, intervalMs: 100 });
    } catch (error) {
      await process.stop("SIGKILL");
      throw error;
    }
    return gateway;
  }

  /** Runs `main.ts` with `args` (e.g. `--drain`) to its end; its log is `dir/<logName>.log`. */
  static async run(
    dir: string,
    settings: GatewaySettings,
    logName: string,
    args: string[],
    timeoutMs = 60_000,
  ): Promise<{ code: number; log: string }> {
    const { process } = await GatewayProcess.#spawn(dir, settings, logName, freePort(), args);
    const timer = setTimeout(() => process.stop("SIGKILL"), timeoutMs);
    try {
      const status = await process.exited;
      return { code: status.code, log: await process.logTail(60) };
    } finally {
      clearTimeout(timer);
    }
  }

  static async #spawn(
    dir: string,
    settings: GatewaySettings,
    logName: string,
    httpPort: number,
    args: string[],
  ): Promise<{ process: ManagedProcess; apiToken: string }> {
    const env: Record<string, string> = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? dir,
      NO_COLOR: "1",
      MQTT_URL: settings.mqttUrl,
      MQTT_CLIENT_ID: settings.clientId,
      MQTT_SHARE_GROUP: settings.shareGroup,
      MQTT_RECONNECT_DELAY: "0.2",
      MQTT_RECONNECT_MAX_DELAY: "2",
      REDIS_URL: settings.redisUrl,
      MQTT_INCOMING_QUEUE: settings.incomingQueue,
      MQTT_OUTGOING_QUEUE: `${settings.incomingQueue}:outgoing`,
      DATABASE_URL: settings.databaseUrl,
      DATA_DIR: `${dir}/data`,
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(httpPort),
      API_TOKEN: `fault-token-${randomSuffix(16)}`,
      JOB_RETRY_BASE_MS: "100",
      JOB_RETRY_MAX_MS: "2000",
      LOG_LEVEL: "info",
      GATEWAY_ENV_FILE: "", // never a developer's .env
      ...settings.extra,
    };
    for (const name of ["DENO_DIR", "TMPDIR", "XDG_CACHE_HOME"]) {
      const value = Deno.env.get(name);
      if (value) env[name] = value;
    }
    const process = await ManagedProcess.spawn(logName, Deno.execPath(), [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-sys",
      "main.ts",
      ...args,
    ], { cwd: REPO_ROOT, env, clearEnv: true, logPath: `${dir}/${logName}.log` });
    return { process, apiToken: env.API_TOKEN! };
  }

  get pid(): number {
    return this.process.pid;
  }

  /** Sends `signal` (SIGUSR2: drain) and waits for the exit. */
  async signalAndWait(signal: Deno.Signal, timeoutMs = 60_000): Promise<Deno.CommandStatus> {
    this.process.signal(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error(`${this.process.name} did not exit after ${signal}`)),
        timeoutMs,
      )
    );
    try {
      return await Promise.race([this.process.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  get running(): boolean {
    return this.process.running;
  }

  get base(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  // deno-lint-ignore no-explicit-any
  async status(): Promise<any> {
    const { status, body } = await fetchText(`${this.base}/mqtt/status`, 3000, this.apiToken);
    if (status !== 200) throw new Error(`/mqtt/status answered ${status}: ${body}`);
    return JSON.parse(body);
  }

  async healthz(): Promise<number> {
    return (await fetchText(`${this.base}/healthz`)).status;
  }

  /** Sum of a Prometheus counter's samples whose labels include every pair of `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const { body } = await fetchText(`${this.base}/metrics`, 3000, this.apiToken);
    let total = 0;
    for (const line of body.split("\n")) {
      if (!line.startsWith(name)) continue;
      const match = line.match(/^(\w+)(?:\{([^}]*)\})?\s+(\S+)$/);
      if (!match || match[1] !== name) continue;
      const present = Object.fromEntries(
        [...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
      );
      if (Object.entries(labels).every(([k, v]) => present[k] === v)) total += Number(match[3]);
    }
    return total;
  }

  /** kill -9: no cleanup at all, as a crash or an OOM kill. */
  async kill(): Promise<void> {
    await this.process.stop("SIGKILL");
  }

  /** Graceful stop (SIGTERM); SIGKILL if it does not exit in time. */
  async stop(): Promise<Deno.CommandStatus> {
    return await this.process.stop("SIGTERM", 15_000);
  }

  rssKb(): Promise<number | undefined> {
    return this.process.rssKb();
  }

  logTail(lines = 40): Promise<string> {
    return this.process.logTail(lines);
  }
}

// ---------------------------------------------------------------------------------------------
// Machines (publishers)

export interface Outgoing {
  /** Index of the machine (client) that sends it. */
  machine: number;
  topic: string;
  payload: string | Uint8Array;
}

export interface TransactionMessage extends Outgoing {
  transactionId: string;
  serialNo: string;
  slotNo: number;
  quantity: number;
}

/** `count` transactions spread over `serials`, with unique ids and known quantities. */
export function makeTransactions(
  serials: readonly string[],
  count: number,
  runId: string,
): TransactionMessage[] {
  const out: TransactionMessage[] = [];
  for (let i = 0; i < count; i++) {
    const machine = i % serials.length;
    const serialNo = serials[machine]!;
    const seq = Math.floor(i / serials.length);
    const slotNo = 1 + (seq % 6);
    const quantity = 1 + ((i * 7) % 3);
    // Numbered per machine like real machines: the same ids from every machine (a sale is the pair).
    const transactionId = `T${runId}-${seq}`;
    out.push({
      machine,
      serialNo,
      slotNo,
      quantity,
      transactionId,
      topic: `machine/${serialNo}/transaction`,
      payload: JSON.stringify({
        transaction_id: transactionId,
        slot_no: slotNo,
        quantity,
        amount: 3.5 * quantity,
      }),
    });
  }
  return out;
}

/** What `machine_slots.stock` must hold after `messages` were each applied exactly once. */
export function expectedStock(messages: readonly TransactionMessage[]): Map<string, number> {
  const stock = new Map<string, number>();
  for (const m of messages) {
    const key = `${m.serialNo}/${m.slotNo}`;
    stock.set(key, (stock.get(key) ?? 0) - m.quantity);
  }
  return stock;
}

/**
 * One mqtt.js client per machine, each with a persistent session (`clean: false`, MQTT 5 session
 * expiry). Publishes are QoS 1; `send` resolves when the broker acknowledged every message.
 */
export class Fleet {
  readonly clients: MqttClient[];
  acked = 0;
  #closed = false;

  private constructor(clients: MqttClient[]) {
    this.clients = clients;
  }

  static async connect(
    url: string,
    clientIds: readonly string[],
    { reconnectPeriodMs = 250 } = {},
  ): Promise<Fleet> {
    const clients = clientIds.map((clientId) => {
      const client = mqtt.connect(url, {
        clientId,
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 3600 },
        reconnectPeriod: reconnectPeriodMs,
        connectTimeout: 5000,
        keepalive: 30,
      });
      client.on("error", () => {}); // refused connections during a broker restart: it retries
      return client;
    });
    const fleet = new Fleet(clients);
    try {
      await Promise.all(
        clients.map((c) =>
          waitFor(`machine ${c.options.clientId} connected`, () => c.connected, {
            timeoutMs: 10_000,
            intervalMs: 20,
          })
        ),
      );
    } catch (error) {
      await fleet.close();
      throw error;
    }
    return fleet;
  }

  /** Publishes every message QoS 1, `window` unacknowledged at most per machine, in order. */
  async send(messages: readonly Outgoing[], window = 10): Promise<void> {
    const perMachine = new Map<number, Outgoing[]>();
    for (const m of messages) {
      const list = perMachine.get(m.machine) ?? [];
      list.push(m);
      perMachine.set(m.machine, list);
    }
    await Promise.all([...perMachine].map(async ([machine, list]) => {
      const client = this.clients[machine];
      if (!client) throw new Error(`No machine ${machine} in this fleet`);
      let next = 0;
      const lane = async () => {
        while (next < list.length) {
          const m = list[next++]!;
          await new Promise<void>((resolve, reject) => {
            client.publish(m.topic, m.payload as string, { qos: 1 }, (error) => {
              if (error) {
                reject(new Error(`Publishing to ${m.topic} failed: ${error.message}`, { cause: error }));
              } else resolve();
            });
          });
          this.acked++;
        }
      };
      await Promise.all(Array.from({ length: window }, lane));
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(
      this.clients.map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Final checks

/**
 * Waits until every job of `queue` is finished and the database holds `messages`, then checks
 * exactly: one row per sent transaction, and each slot's stock is minus the sum of its quantities.
 */
export async function assertLedgerExact(
  db: TestDatabase,
  redis: Pick<RedisServer, "depth">,
  queue: string,
  messages: readonly TransactionMessage[],
  timeoutMs = 60_000,
): Promise<Ledger> {
  await waitFor(`${messages.length} transactions in the database`, async () => {
    const n = await db.transactionCount();
    const { pending } = await redis.depth(queue);
    return n >= messages.length && pending === 0;
  }, { timeoutMs, intervalMs: 250 });
  const ledger = await db.ledger();
  const problems: string[] = [];
  if (ledger.count !== messages.length) problems.push(`${ledger.count} rows for ${messages.length} sent`);
  if (ledger.distinct !== ledger.count) problems.push(`${ledger.count - ledger.distinct} duplicate rows`);
  const expected = expectedStock(messages);
  for (const [key, stock] of expected) {
    const actual = ledger.stock.get(key);
    if (actual !== stock) problems.push(`slot ${key}: stock ${actual}, expected ${stock}`);
  }
  for (const key of ledger.stock.keys()) if (!expected.has(key)) problems.push(`unexpected slot ${key}`);
  if (problems.length > 0) {
    throw new Error(`The database does not hold exactly what was sent: ${problems.slice(0, 10).join("; ")}`);
  }
  return ledger;
}

/** What {@link scenario} hands its body: a cleanup stack, and logs to print on failure. */
export interface ScenarioContext {
  defer: (fn: () => Promise<unknown> | unknown) => void;
  logs: (fn: () => Promise<string>) => void;
}

/**
 * Runs `body` with a cleanup stack: every registered cleanup runs (last first) even if the body
 * or another cleanup fails. On failure, the tails of the given logs are printed.
 */
export async function scenario(
  name: string,
  body: (ctx: ScenarioContext) => Promise<void>,
): Promise<void> {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const logSources: (() => Promise<string>)[] = [];
  const started = performance.now();
  try {
    await body({ defer: (fn) => cleanups.push(fn), logs: (fn) => logSources.push(fn) });
  } catch (error) {
    for (const source of logSources) {
      try {
        console.error(`---- [${name}] log tail ----\n${await source()}`);
      } catch { /* best effort */ }
    }
    throw error;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error(`[${name}] cleanup failed: ${(error as Error).message}`);
      }
    }
    console.log(`[${name}] ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario building blocks

/** A scenario's own services: temp dir, mosquitto, redis-server and database. */
export interface Services {
  dir: TempDir;
  broker: Mosquitto;
  redis: RedisServer;
  db: TestDatabase;
}

/** Starts a scenario's {@link Services} in a temp dir named after `prefix`; each is cleaned up via `defer`. */
export async function startServices(
  { defer }: ScenarioContext,
  prefix: string,
  options: { broker?: MosquittoOptions; redis?: RedisOptions } = {},
): Promise<Services> {
  const dir = await TempDir.create(prefix);
  defer(() => dir[Symbol.asyncDispose]());
  const broker = await Mosquitto.start(dir.path, options.broker);
  defer(() => broker.close());
  const redis = await RedisServer.start(dir.path, options.redis);
  defer(() => redis.close());
  const db = await TestDatabase.create();
  defer(() => db.close());
  return { dir, broker, redis, db };
}

/** {@link gatewaySettings} onto the scenario's broker, redis and database. */
export function servicesSettings({ broker, redis, db }: Services): GatewaySettings {
  return gatewaySettings({ mqttUrl: broker.url, redisUrl: redis.url, databaseUrl: db.url() });
}

/** Starts a gateway that stays for the whole scenario: stopped via `defer`, its log tail in `logs`. */
export async function startGateway(
  { defer, logs }: ScenarioContext,
  dir: string,
  settings: GatewaySettings,
  logName?: string,
): Promise<GatewayProcess> {
  const gateway = await GatewayProcess.start(dir, settings, logName);
  defer(() => gateway.stop());
  logs(() => gateway.logTail());
  return gateway;
}

/**
 * Connects `machines` machines with serials `<serialPrefix><run>-<i>` (client id `machine-<serial>`,
 * closed via `defer`) and makes `count` transactions for them.
 */
export async function transactionFleet(
  { defer }: ScenarioContext,
  brokerUrl: string,
  serialPrefix: string,
  machines: number,
  count: number,
  options?: { reconnectPeriodMs?: number },
): Promise<{ serials: string[]; fleet: Fleet; messages: TransactionMessage[] }> {
  const run = randomSuffix(6);
  const serials = Array.from({ length: machines }, (_, i) => `${serialPrefix}${run}-${i}`);
  const fleet = await Fleet.connect(brokerUrl, serials.map((s) => `machine-${s}`), options);
  defer(() => fleet.close());
  const messages = makeTransactions(serials, count, run);
  return { serials, fleet, messages };
}

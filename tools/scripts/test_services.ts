/**
 * @module test_services
 * `deno task test` runs the tests through this: it finds the services the tests use (MariaDB, Redis,
 * Mosquitto) and runs the command given after it with their URLs in `TEST_MYSQL_URL`, `TEST_REDIS_URL`,
 * `TEST_MQTT_URL` (read by `tests/support.ts`).
 *
 * - A URL already in the environment is used as it is.
 * - Else the service on its usual local port (3306, 6379, 1883) when something answers there.
 * - Else a private one, started from the installed programs on a free port in a temporary directory
 *   and stopped afterwards (MariaDB: `mariadb-install-db` + `mariadbd`; `redis-server`; `mosquitto`).
 * - A program that is missing is installed with apt when running as root; otherwise one line names
 *   the packages and nothing runs (exit 1).
 *
 *     deno run -A tools/scripts/test_services.ts deno test --allow-net … [files]
 */
import { join } from "node:path";

interface Service {
  name: string;
  variable: string;
  url: string;
  port: number;
  programs: string[];
  pkg: string;
  start(dir: string, port: number): Promise<Deno.ChildProcess>;
  /** The URL of a private instance on `port`. */
  privateUrl(port: number): string;
}

const children: { name: string; child: Deno.ChildProcess }[] = [];
const asRoot = Deno.uid() === 0;

function log(line: string): void {
  console.error(`== ${line}`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function answers(port: number, timeoutMs = 1000): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port, signal: AbortSignal.timeout(timeoutMs) });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** The program's path on PATH or in the sbin directories (daemons live there). */
function which(program: string): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const dir of dirs.filter(Boolean)) {
    try {
      const path = join(dir, program);
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not there
    }
  }
  return undefined;
}

function spawn(name: string, program: string, args: string[], logFile: string): Deno.ChildProcess {
  const out = Deno.openSync(logFile, { write: true, create: true, append: true });
  const child = new Deno.Command(which(program)!, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Drained into the log file, so a chatty daemon never blocks on a full pipe.
  const sink = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) out.writeSync(chunk);
  };
  Promise.all([sink(child.stdout), sink(child.stderr)]).finally(() => out.close());
  children.push({ name, child });
  return child;
}

async function run(program: string, args: string[], logFile: string): Promise<void> {
  const { code } = await spawn(program, program, args, logFile).status;
  children.pop();
  if (code !== 0) {
    throw new Error(`${program} failed (exit ${code}): ${(await Deno.readTextFile(logFile)).slice(-600)}`);
  }
}

const SERVICES: Service[] = [
  {
    name: "MariaDB",
    variable: "TEST_MYSQL_URL",
    url: "mysql://root@127.0.0.1:3306",
    port: 3306,
    programs: ["mariadbd", "mariadb-install-db"],
    pkg: "mariadb-server",
    privateUrl: (port) => `mysql://root@127.0.0.1:${port}`,
    async start(dir, port) {
      const data = join(dir, "mariadb");
      const user = asRoot ? ["--user=root"] : [];
      // No reverse DNS lookup of each client (a machine without a resolver waits seconds per
      // connection); TCP clients from 127.0.0.1 are then root@127.0.0.1, which init-file creates.
      const init = join(dir, "mariadb-init.sql");
      await Deno.writeTextFile(
        init,
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n" +
          "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
      );
      await run("mariadb-install-db", [
        "--no-defaults",
        `--datadir=${data}`,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        ...user,
      ], join(dir, "mariadb-install.log"));
      return spawn("MariaDB", "mariadbd", [
        "--no-defaults",
        `--datadir=${data}`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        `--socket=${join(dir, "mariadb.sock")}`,
        `--pid-file=${join(dir, "mariadb.pid")}`,
        "--innodb-buffer-pool-size=64M",
        "--max-connections=1000",
        "--skip-name-resolve",
        `--init-file=${init}`,
        ...user,
      ], join(dir, "mariadb.log"));
    },
  },
  {
    name: "Redis",
    variable: "TEST_REDIS_URL",
    url: "redis://127.0.0.1:6379/0",
    port: 6379,
    programs: ["redis-server"],
    pkg: "redis-server",
    privateUrl: (port) => `redis://127.0.0.1:${port}/0`,
    start(dir, port) {
      return Promise.resolve(spawn("Redis", "redis-server", [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
      ], join(dir, "redis.log")));
    },
  },
  {
    name: "Mosquitto",
    variable: "TEST_MQTT_URL",
    url: "mqtt://127.0.0.1:1883",
    port: 1883,
    programs: ["mosquitto"],
    pkg: "mosquitto",
    privateUrl: (port) => `mqtt://127.0.0.1:${port}`,
    async start(dir, port) {
      const config = join(dir, "mosquitto.conf");
      const lines = [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence false",
        "max_queued_messages 0",
        "log_dest stdout",
      ];
      // As root, mosquitto would switch to the "mosquitto" user, which cannot read our temp dir.
      if (asRoot) lines.push("user root");
      await Deno.writeTextFile(config, lines.join("\n") + "\n");
      return spawn("Mosquitto", "mosquitto", ["-c", config], join(dir, "mosquitto.log"));
    },
  },
];

/** The one line that says what to install when a service is not there and its programs are missing. */
export function missingLine(
  missing: readonly Pick<Service, "name" | "port" | "pkg" | "variable">[],
  programs: readonly string[],
): string {
  const pkgs = missing.map((s) => s.pkg).join(" ");
  return `The tests need ${missing.map((s) => s.name).join(", ")}: nothing answers on ${
    missing.map((s) => `127.0.0.1:${s.port}`).join(", ")
  } and ${programs.join(", ")} ${programs.length > 1 ? "are" : "is"} not installed; install ${pkgs} ` +
    `(apt-get install -y ${pkgs}) or set ${missing.map((s) => s.variable).join(" / ")}.`;
}

/** Installs the packages with apt when root; else says in one line what to install. Returns success. */
async function install(missing: Service[]): Promise<boolean> {
  const pkgs = missing.map((s) => s.pkg);
  const line = missingLine(missing, missing.flatMap((s) => s.programs.filter((p) => !which(p))));
  if (!asRoot || !which("apt-get")) {
    console.error(line);
    return false;
  }
  log(`installing ${pkgs.join(" ")} with apt-get`);
  const apt = (args: string[]) =>
    new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "inherit",
    }).output().then((o) => o.code === 0, () => false);
  const ok = await apt(["install", "-y", "--no-install-recommends", ...pkgs]) ||
    (await apt(["update"]) && await apt(["install", "-y", "--no-install-recommends", ...pkgs]));
  if (!ok) console.error(line);
  return ok;
}

async function stopAll(): Promise<void> {
  for (const { child } of children.reverse()) {
    try {
      child.kill("SIGTERM");
    } catch {
      // exited already
    }
  }
  await Promise.all(children.map(async ({ child }) => {
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 10_000);
    await child.status;
    clearTimeout(killer);
  }));
}

async function main(command: string[]): Promise<number> {
  if (command.length === 0) {
    console.error("usage: test_services.ts <command> [args…]");
    return 2;
  }
  const env: Record<string, string> = {};
  const toStart: Service[] = [];
  await Promise.all(SERVICES.map(async (s) => {
    const given = Deno.env.get(s.variable);
    if (given) env[s.variable] = given;
    else if (await answers(s.port)) env[s.variable] = s.url;
    else toStart.push(s);
  }));
  let dir: string | undefined;
  try {
    if (toStart.length > 0) {
      const missing = toStart.filter((s) => s.programs.some((p) => !which(p)));
      if (missing.length > 0 && !await install(missing)) return 1;
      dir = await Deno.makeTempDir({ prefix: "gw-test-services-" });
      await Promise.all(toStart.map(async (s) => {
        const started = performance.now();
        const port = freePort();
        const child = await s.start(dir!, port);
        const deadline = Date.now() + 60_000;
        let exited = false;
        child.status.then(() => exited = true);
        while (!await answers(port, 500)) {
          if (exited || Date.now() > deadline) {
            throw new Error(`the private ${s.name} did not start on port ${port} (log in ${dir})`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
        env[s.variable] = s.privateUrl(port);
        log(
          `private ${s.name} on 127.0.0.1:${port} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
        );
      }));
    }
    for (const s of SERVICES) if (!toStart.includes(s)) log(`${s.name}: ${env[s.variable]}`);
    const [program, ...args] = command;
    const child = new Deno.Command(program === "deno" ? Deno.execPath() : program!, {
      args,
      env,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const pass = (signal: Deno.Signal) => () => {
      try {
        child.kill(signal);
      } catch { /* exited */ }
    };
    const onInt = pass("SIGINT"), onTerm = pass("SIGTERM");
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    try {
      return (await child.status).code;
    } finally {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
    }
  } catch (error) {
    console.error(`Cannot set up the test services: ${(error as Error).message}`);
    return 1;
  } finally {
    await stopAll();
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

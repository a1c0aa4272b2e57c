/**
 * @module startup_test
 * The documented first start with real services (`cp .env.example .env`, `deno task start`) as a
 * process: a database that does not exist yet is created; one the account may not create, and every
 * service that cannot be reached, is one line each (what, where, what to check), exit code 1, no stack.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { freePort, LaunchedGateway, REPO_ROOT, startTaskFlags } from "./launched_gateway.ts";
import { query, SERVICES, uniqueId } from "./support.ts";

/** `.env.example` as a newcomer copies it, pointed at this machine's test services. */
async function envExample(overrides: Record<string, string>): Promise<Record<string, string>> {
  const text = await Deno.readTextFile(`${REPO_ROOT}.env.example`);
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  // The example's URLs are the default local ports; the tests' services may live elsewhere.
  assert.equal(env.DATABASE_URL, "mysql://root@127.0.0.1:3306/star_cloud");
  assert.equal(env.REDIS_URL, "redis://127.0.0.1:6379/0");
  assert.equal(env.MQTT_URL, "mqtt://127.0.0.1:1883");
  const id = uniqueId("start-");
  return {
    ...env,
    MQTT_URL: SERVICES.mqtt,
    REDIS_URL: SERVICES.redis,
    MQTT_CLIENT_ID: id,
    MQTT_SHARE_GROUP: id,
    MQTT_INCOMING_QUEUE: `${id}:in`,
    MQTT_OUTGOING_QUEUE: `${id}:out`,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(freePort()),
    DATA_DIR: await Deno.makeTempDir({ prefix: "gw-start-" }),
    ...overrides,
  };
}

async function launch(env: Record<string, string>): Promise<LaunchedGateway> {
  return new LaunchedGateway({
    cwd: REPO_ROOT,
    launcher: "launch.ts",
    entry: "main.ts",
    env,
    denoFlags: await startTaskFlags(),
  });
}

/** Waits for the exit (the gateway must stop by itself) and returns its code. */
async function exitCode(gateway: LaunchedGateway, timeoutMs = 30_000): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs));
  const status = await Promise.race([gateway.status, timeout]);
  clearTimeout(timer);
  if (status === "timeout") assert.fail(`the gateway did not stop by itself:\n${gateway.output}`);
  await gateway.stop();
  return status.code;
}

async function admin<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const c = await mysql.createConnection({ uri: SERVICES.mysqlAdmin });
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

Deno.test("start from .env.example: the database that does not exist yet is created and migrated", async () => {
  const name = uniqueId("gw_new_").toLowerCase();
  const dbUrl = `${SERVICES.mysqlAdmin}/${name}`;
  const env = await envExample({ DATABASE_URL: dbUrl, LOG_LEVEL: "info" });
  const gateway = await launch(env);
  try {
    await gateway.healthy();
    assert.match(gateway.output, new RegExp(`Created the database ${name} on`));
    const tables = await query<{ n: number }>(
      dbUrl,
      "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = 'machines'",
      [name],
    );
    assert.equal(tables[0]!.n, 1, "migrated");
    assert.equal(await gateway.stop(), 0, gateway.output);
  } finally {
    await gateway.stop(5000);
    await admin((c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``));
    await Deno.remove(env.DATA_DIR!, { recursive: true });
  }
});

Deno.test("start: a missing database the account may not create is one line saying what to do, exit 1", async () => {
  const user = uniqueId("gw_u").toLowerCase().slice(0, 30);
  const name = uniqueId("gw_none_").toLowerCase();
  const where = new URL(SERVICES.mysqlAdmin);
  await admin((c) => c.query(`CREATE USER ?@'%' IDENTIFIED BY 'secret-pw'`, [user]));
  const env = await envExample({
    DATABASE_URL: `mysql://${user}:secret-pw@${where.host}/${name}`,
    LOG_LEVEL: "info",
  });
  const gateway = await launch(env);
  try {
    assert.equal(await exitCode(gateway), 1, gateway.output);
    const fatal = gateway.output.split("\n").filter((l) => l.includes("[FTL]"));
    assert.equal(fatal.length, 1, gateway.output);
    assert.match(
      fatal[0]!,
      new RegExp(
        `Cannot use MySQL at ${where.host} \\(DATABASE_URL\\): user ${user} may not use database ${name} \\(or it does not exist\\) and user ${user} may not create it .*create it \\(CREATE DATABASE ${name}\\) and grant`,
      ),
    );
    assert.doesNotMatch(gateway.output, /^\s+at /m, "no stack trace");
    assert.doesNotMatch(gateway.output, /secret-pw/, "no password");
  } finally {
    await gateway.stop(5000);
    await admin((c) => c.query(`DROP USER IF EXISTS ?@'%'`, [user]));
    await Deno.remove(env.DATA_DIR!, { recursive: true });
  }
});

Deno.test("start: MySQL, Redis and the broker unreachable are one line each, no stack trace, exit 1", async () => {
  const [db, redis, broker] = [freePort(), freePort(), freePort()];
  const env = await envExample({
    DATABASE_URL: `mysql://root:secret-pw@127.0.0.1:${db}/star_cloud`,
    REDIS_URL: `redis://127.0.0.1:${redis}/0`,
    MQTT_URL: `mqtt://127.0.0.1:${broker}`,
    STARTUP_WAIT_SECONDS: "2",
  });
  const gateway = await launch(env);
  try {
    assert.equal(await exitCode(gateway), 1, gateway.output);
    const fatal = gateway.output.split("\n").filter((l) => l.includes("[FTL]"));
    assert.equal(fatal.length, 3, gateway.output);
    const check = (service: string, port: number, variable: string) =>
      new RegExp(
        `Cannot use ${service} at 127\\.0\\.0\\.1:${port} \\(${variable}\\): connection refused; check that`,
      );
    assert.ok(fatal.some((l) => check("MySQL", db, "DATABASE_URL").test(l)), gateway.output);
    assert.ok(fatal.some((l) => check("Redis", redis, "REDIS_URL").test(l)), gateway.output);
    assert.ok(fatal.some((l) => check("the MQTT broker", broker, "MQTT_URL").test(l)), gateway.output);
    assert.doesNotMatch(gateway.output, /^\s+at /m, "no stack trace");
    assert.doesNotMatch(gateway.output, /secret-pw/, "no password");
  } finally {
    await gateway.stop(5000);
    await Deno.remove(env.DATA_DIR!, { recursive: true });
  }
});

/**
 * @module support
 * Test helpers for end-to-end tests against the real local services: a fresh MariaDB database,
 * unique queue names / client ids / serials per test, MQTT machine clients, and polling.
 */
import mqtt, { type MqttClient } from "mqtt";
import mysql from "mysql2/promise";
import { Redis } from "ioredis";
import { type Config, loadConfig } from "../config.ts";
import type { Gateway } from "../app/gateway.ts";
import type { MqttConnectionOptions } from "../mqtt/mqtt_connection.ts";
import { binaryAsText } from "../db/mysql/binary_as_text.ts";

/**
 * The services the tests use: the local ones on their usual ports, or the private ones
 * `tools/scripts/test_services.ts` (run by `deno task test`) started and named in these variables.
 */
export const SERVICES = {
  mqtt: Deno.env.get("TEST_MQTT_URL") || "mqtt://127.0.0.1:1883",
  redis: Deno.env.get("TEST_REDIS_URL") || "redis://127.0.0.1:6379/0",
  mysqlAdmin: Deno.env.get("TEST_MYSQL_URL") || "mysql://root@127.0.0.1:3306",
};

export function uniqueId(prefix = "t"): string {
  return `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/** A database of its own, dropped by `drop()`. */
export async function freshDatabase(): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = uniqueId("gw_").toLowerCase();
  const admin = await mysql.createConnection({ uri: SERVICES.mysqlAdmin });
  await admin.query(`CREATE DATABASE \`${name}\``);
  await admin.end();
  return {
    name,
    url: `${SERVICES.mysqlAdmin}/${name}`,
    drop: async () => {
      const c = await mysql.createConnection({ uri: SERVICES.mysqlAdmin });
      await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await c.end();
    },
  };
}

/** Runs one query on the test database. */
export async function query<T = Record<string, unknown>>(
  dbUrl: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = await mysql.createConnection({
    uri: dbUrl,
    timezone: "Z",
    decimalNumbers: true,
    typeCast: binaryAsText,
  });
  try {
    const [rows] = await c.query(sql, params);
    return rows as T[];
  } finally {
    await c.end();
  }
}

/** Deletes every Redis key that starts with `prefix` or `{prefix` (the queues' hash-tagged keys). */
export async function dropRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(SERVICES.redis);
  try {
    const keys = [...await redis.keys(`${prefix}*`), ...await redis.keys(`{${prefix}*`)];
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

export interface TestEnv {
  prefix: string;
  db: { url: string; name: string };
  env: Record<string, string>;
  config(overrides?: Record<string, string>): Config;
  cleanup(): Promise<void>;
}

/** Everything one test needs of its own: database, queue names, client id, share group. */
export async function testEnv(): Promise<TestEnv> {
  const prefix = uniqueId("test:");
  const db = await freshDatabase();
  const id = prefix.replace(":", "-");
  const env: Record<string, string> = {
    MQTT_URL: SERVICES.mqtt,
    REDIS_URL: SERVICES.redis,
    DATABASE_URL: db.url,
    MQTT_INCOMING_QUEUE: `${prefix}:mqtt_incoming_jobs`,
    MQTT_OUTGOING_QUEUE: `${prefix}:mqtt_outgoing_commands`,
    MQTT_CLIENT_ID: `gw-${id}`,
    MQTT_SHARE_GROUP: id,
    MQTT_SESSION_EXPIRY: "300",
    MQTT_RECONNECT_DELAY: "0.2",
    JOB_RETRY_BASE_MS: "50",
    JOB_RETRY_MAX_MS: "500",
    API_TOKEN: "test-api-token-0123456789",
    LOG_LEVEL: "error",
  };
  return {
    prefix,
    db,
    env,
    config: (overrides = {}) => loadConfig({ ...env, ...overrides }),
    cleanup: async () => {
      await dropRedisKeys(prefix);
      await db.drop();
    },
  };
}

/**
 * A gateway MQTT connection's options for the test broker: MQTT 5, a clean session, quick
 * reconnects and a fresh client id; `over` changes any of them.
 */
export function mqttConnectionOptions(over: Partial<MqttConnectionOptions> = {}): MqttConnectionOptions {
  return {
    url: SERVICES.mqtt,
    clientId: uniqueId("gw-"),
    keepalive: 30,
    protocolVersion: 5,
    clean: true,
    sessionExpiry: 0,
    reconnectDelayMs: 50,
    reconnectMaxDelayMs: 100,
    ...over,
  };
}

/** A simulated machine: an MQTT client publishing QoS 1. */
export async function machineClient(
  url = SERVICES.mqtt,
  options: mqtt.IClientOptions = {},
): Promise<MqttClient> {
  return await mqtt.connectAsync(url, { clientId: uniqueId("machine-"), reconnectPeriod: 0, ...options });
}

export async function publishJson(client: MqttClient, topic: string, body: unknown): Promise<void> {
  await client.publishAsync(topic, typeof body === "string" ? body : JSON.stringify(body), { qos: 1 });
}

/** Polls `fn` until it returns a truthy value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
}

/** Starts `gateway` and waits until its MQTT subscriptions are granted (messages sent before are lost). */
export async function startGateway(gateway: Gateway): Promise<Gateway> {
  await gateway.start();
  if (gateway.connection) {
    await waitFor(() => gateway.connection!.status().subscribed, 10_000, "MQTT subscriptions to be granted");
  }
  return gateway;
}

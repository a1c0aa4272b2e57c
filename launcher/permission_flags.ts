/**
 * @module permission_flags
 * The narrowest `deno run` permission set the gateway needs for one {@link Config}: network only to
 * the configured broker, Redis, database, webhook and device-proxy hosts plus its own listen
 * addresses; read and write only `DATA_DIR` (and read `DEVICE_PROXIES_FILE`); only the configuration variables of the environment.
 * No `--allow-sys` (no library asks), and never `--allow-run`, `--allow-ffi` or `--allow-all`. `launch.ts` computes it from the same environment the gateway
 * will read, so the set follows the configuration.
 */
import { type Config, CONFIG_VARIABLES, ConfigError } from "../config.ts";
import { parseRedisUrl } from "../queue/redis/redis_url.ts";

/**
 * Environment variables the bundled libraries read (`launcher/permission_flags_test.ts` scans the
 * bundle for them): they read as unset (`--ignore-env`), so only config.ts configures the gateway.
 */
export const LIBRARY_ENV_VARIABLES: readonly string[] = [
  "DEBUG", // debug (mqtt, aedes); its DEBUG_* options come from Object.keys(process.env), allowed
  "MQTTJS_SOCKS_PROXY", // mqtt
  "READABLE_STREAM", // readable-stream (mqtt-packet)
  "TZ", // mysql2 (read in a try; the pool uses timezone "Z")
  "WS_NO_BUFFER_UTIL", // ws (mqtt over WebSocket)
  "WS_NO_UTF_8_VALIDATE",
];

const DEFAULT_PORTS: Record<string, number> = {
  "mqtt:": 1883,
  "tcp:": 1883,
  "mqtts:": 8883,
  "ssl:": 8883,
  "ws:": 80,
  "wss:": 443,
  "http:": 80,
  "https:": 443,
  "redis:": 6379,
  "rediss:": 6379,
  "mysql:": 3306,
  "mariadb:": 3306,
};

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

/** `host:port` of a service URL (IPv6 hosts keep their brackets, as `--allow-net` wants them). */
export function netAddress(url: string): string {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[u.protocol];
  if (!port) throw new Error(`No default port for ${u.protocol} in ${url}: give one explicitly`);
  return `${u.hostname}:${port}`;
}

/**
 * One server: its address. A Cluster or Sentinel set: the listed hosts on every port, since the
 * client then dials the addresses the nodes announce (other nodes, the current master) on ports
 * of their own. List every node's host in `REDIS_URL` so that each is allowed, and name in
 * `GATEWAY_ALLOW_NET` any other host they may announce (a Sentinel's masters and replicas).
 */
function redisHosts(url: string): string[] {
  const target = parseRedisUrl(url);
  if (target.kind === "single") return [netAddress(url)];
  const nodes = target.kind === "cluster" ? target.nodes : target.sentinels;
  return nodes.map((n) => (n.host.includes(":") ? `[${n.host}]` : n.host));
}

/**
 * A listen address; port 0 (any free port) can only be granted as the whole host. `dialBack`: the
 * gateway also connects to it (its own client of the embedded broker dials loopback for a wildcard).
 */
function listenAddresses(host: string, port: number, dialBack = false): string[] {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const one = (name: string) => (port === 0 ? name : `${name}:${port}`);
  return dialBack && WILDCARD_HOSTS.has(h) ? [one(h), one("127.0.0.1")] : [one(h)];
}

/** The hosts the gateway may dial or listen on for `config`, sorted and without duplicates. */
export function netAllowList(config: Config): string[] {
  const hosts: string[] = [];
  if (config.mqtt.url) hosts.push(netAddress(config.mqtt.url));
  else hosts.push(...listenAddresses(config.mqtt.listenHost, config.mqtt.listenPort, true));
  if (config.redis.url) hosts.push(...redisHosts(config.redis.url));
  if (config.database.url) hosts.push(netAddress(config.database.url));
  if (config.alertWebhookUrl) hosts.push(netAddress(config.alertWebhookUrl));
  if (config.emqx.api) hosts.push(netAddress(config.emqx.api.url));
  for (const proxy of config.devices.proxies) hosts.push(netAddress(proxy.base_url));
  hosts.push(...listenAddresses(config.http.host, config.http.port));
  hosts.push(...config.allowNet);
  return [...new Set(hosts)].sort();
}

/**
 * The `deno run` flags for `config` (no entry point, no script arguments). `proxiesFile` is
 * `DEVICE_PROXIES_FILE`, which `loadConfig` reads at start.
 */
export function permissionFlags(config: Config, proxiesFile?: string): string[] {
  const dataDir = config.database.dataDir;
  // Deno splits permission lists on commas and has no escape for them.
  if (dataDir.includes(",")) throw new ConfigError("DATA_DIR", "must not contain a comma");
  if (proxiesFile?.includes(",")) throw new ConfigError("DEVICE_PROXIES_FILE", "must not contain a comma");
  return [
    // A denied access must fail, never wait on a prompt nobody sees.
    "--no-prompt",
    `--allow-net=${netAllowList(config).join(",")}`,
    `--allow-read=${[dataDir, ...(proxiesFile ? [proxiesFile] : [])].join(",")}`,
    `--allow-write=${dataDir}`,
    `--allow-env=${CONFIG_VARIABLES.join(",")}`,
    `--ignore-env=${LIBRARY_ENV_VARIABLES.join(",")}`,
  ];
}

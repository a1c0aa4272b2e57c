/**
 * @module permission_flags_test
 * The permission set follows the configuration: exactly the configured hosts (with their default
 * ports), the listen addresses, `DATA_DIR`, the config variables; never run/ffi/sys/all.
 */
import assert from "node:assert/strict";
import { CONFIG_VARIABLES, ConfigError, loadConfig } from "../config.ts";
import { LIBRARY_ENV_VARIABLES, netAddress, netAllowList, permissionFlags } from "./permission_flags.ts";

function flag(flags: string[], name: string): string[] | undefined {
  const found = flags.find((f) => f === name || f.startsWith(`${name}=`));
  return found === undefined ? undefined : found.slice(name.length + 1).split(",");
}

Deno.test("external services: their hosts and ports, the HTTP listen address, nothing else", () => {
  const config = loadConfig({
    MQTT_URL: "mqtt://emqx:1883",
    REDIS_URL: "redis://:secret@redis/0",
    DATABASE_URL: "mysql://gw:pw@db.internal/star_cloud",
    ALERT_WEBHOOK_URL: "https://hooks.example.com/alert?x=1",
    HTTP_HOST: "0.0.0.0",
    HTTP_PORT: "5200",
    DATA_DIR: "/var/lib/gateway",
  });
  assert.deepEqual(netAllowList(config), [
    "0.0.0.0:5200",
    "db.internal:3306",
    "emqx:1883",
    "hooks.example.com:443",
    "redis:6379",
  ]);
  const flags = permissionFlags(config);
  assert.deepEqual(flag(flags, "--allow-read"), ["/var/lib/gateway"]);
  assert.deepEqual(flag(flags, "--allow-write"), ["/var/lib/gateway"]);
  assert.deepEqual(flag(flags, "--allow-env"), [...CONFIG_VARIABLES]);
  assert.deepEqual(flag(flags, "--ignore-env"), [...LIBRARY_ENV_VARIABLES]);
  assert.ok(flags.includes("--no-prompt"));
  for (const f of flags) {
    assert.doesNotMatch(f, /^(-A|--allow-all|--allow-run|--allow-ffi|--allow-sys|--allow-import)/, f);
    assert.ok(f.includes("=") || f === "--no-prompt", `${f} is not a blanket permission`);
  }
  for (const name of LIBRARY_ENV_VARIABLES) assert.ok(!CONFIG_VARIABLES.includes(name), name);
});

Deno.test("Sentinel: the listed sentinels on every port, and GATEWAY_ALLOW_NET's hosts for the masters they name", () => {
  const config = loadConfig({
    REDIS_URL: "redis+sentinel://:pw@sentinel-0:26379,sentinel-1:26379/star-cloud",
    GATEWAY_ALLOW_NET: "redis-0.redis,redis-1.redis:6379",
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "5200",
  });
  const allowed = netAllowList(config);
  for (const host of ["sentinel-0", "sentinel-1", "redis-0.redis", "redis-1.redis:6379"]) {
    assert.ok(allowed.includes(host), `${host} in ${allowed}`);
  }
  assert.throws(() => loadConfig({ GATEWAY_ALLOW_NET: "a b" }), /GATEWAY_ALLOW_NET/);
});

Deno.test("nothing configured: the embedded broker's and HTTP listen addresses only", () => {
  const config = loadConfig({ HTTP_HOST: "127.0.0.1", HTTP_PORT: "8080", MQTT_LISTEN_PORT: "2834" });
  assert.deepEqual(netAllowList(config), ["127.0.0.1:2834", "127.0.0.1:8080"]);
  assert.deepEqual(flag(permissionFlags(config), "--allow-write"), ["./data"]);
});

Deno.test("the embedded broker on every interface: its own client dials it on loopback", () => {
  const config = loadConfig({ MQTT_LISTEN_HOST: "0.0.0.0", MQTT_LISTEN_PORT: "1883", HTTP_PORT: "5200" });
  assert.deepEqual(netAllowList(config), ["0.0.0.0:1883", "0.0.0.0:5200", "127.0.0.1:1883"]);
});

Deno.test("seed names, explicit ports, IPv6, port 0, device proxies and the proxies file", () => {
  const config = loadConfig({
    MQTT_BROKER_HOST: "broker.lan",
    MQTT_BROKER_PORT: "11883",
    REDIS_URL: "redis://[::1]:6380",
    HTTP_HOST: "::",
    HTTP_PORT: "0",
    MQTT_LISTEN_PORT: "0",
    DEVICE_PROXIES: JSON.stringify([
      { proxyid: 1, base_url: "http://10.0.0.5:5555" },
      { proxyid: 2, base_url: "https://proxy-2.lan/" },
    ]),
  });
  assert.deepEqual(netAllowList(config), [
    "10.0.0.5:5555",
    "[::1]:6380",
    "[::]",
    "broker.lan:11883",
    "proxy-2.lan:443",
  ]);
  assert.deepEqual(flag(permissionFlags(config, "conf/proxies.json"), "--allow-read"), [
    "./data",
    "conf/proxies.json",
  ]);
});

Deno.test("default ports per scheme", () => {
  assert.equal(netAddress("mqtts://b"), "b:8883");
  assert.equal(netAddress("ws://b/mqtt"), "b:80");
  assert.equal(netAddress("wss://b/mqtt"), "b:443");
  assert.equal(netAddress("mariadb://u@h/db"), "h:3306");
  assert.equal(netAddress("rediss://h"), "h:6379");
  assert.throws(() => netAddress("gopher://h"), /No default port for gopher:/);
});

Deno.test("a comma in DATA_DIR cannot be expressed as a Deno permission: a ConfigError", () => {
  assert.throws(() => permissionFlags(loadConfig({ DATA_DIR: "/a,b" })), (e) => e instanceof ConfigError);
});

Deno.test("EMQX's REST API (revocation) is allowed when configured", () => {
  const config = loadConfig({
    MQTT_URL: "mqtt://emqx:1883",
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "5200",
    EMQX_API_URL: "http://emqx:18083",
    EMQX_API_KEY: "key",
    EMQX_API_SECRET: "secret",
  });
  assert.deepEqual(netAllowList(config), ["127.0.0.1:5200", "emqx:18083", "emqx:1883"]);
});

Deno.test("a Redis Cluster or Sentinel set: its listed hosts on every port (nodes announce their own)", () => {
  const cluster = loadConfig({ REDIS_URL: "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002" });
  assert.deepEqual(
    netAllowList(cluster).filter((h) => !h.startsWith("0.0.0.0") && !h.startsWith("127.0.0.1")),
    ["10.0.0.1", "10.0.0.2", "[::1]"],
  );
  const sentinel = loadConfig({ REDIS_URL: "redis+sentinel://s1:26379,s2:26379/mymaster" });
  assert.ok(netAllowList(sentinel).includes("s1") && netAllowList(sentinel).includes("s2"));
});

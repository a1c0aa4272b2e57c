import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./config.ts";

Deno.test("defaults: nothing configured means embedded parts and the contract's names", () => {
  const c = loadConfig({});
  assert.equal(c.mqtt.url, undefined);
  assert.equal(c.mqtt.clientId, "star-cloud-gateway");
  assert.equal(c.mqtt.keepalive, 60);
  assert.equal(c.mqtt.reconnectDelayMs, 5000);
  assert.equal(c.mqtt.protocolVersion, 4);
  assert.equal(c.mqtt.listenHost, "127.0.0.1");
  assert.equal(c.mqtt.listenPort, 2834);
  assert.equal(c.redis.url, undefined);
  assert.equal(c.redis.incomingQueue, "mqtt_incoming_jobs");
  assert.equal(c.redis.outgoingQueue, "mqtt_outgoing_commands");
  assert.equal(c.database.url, undefined);
  assert.equal(c.database.dataDir, "./data");
  assert.equal(c.http.host, "0.0.0.0");
  assert.equal(c.http.port, 5200);
  assert.deepEqual([...c.roles], ["uplink", "worker", "downlink", "api", "devices"]);
});

Deno.test("MQTT_URL wins; the seed's MQTT_BROKER_HOST + MQTT_BROKER_PORT are accepted too", () => {
  assert.equal(loadConfig({ MQTT_URL: "mqtt://emqx:1883" }).mqtt.url, "mqtt://emqx:1883");
  const seed = loadConfig({ MQTT_BROKER_HOST: "broker", MQTT_BROKER_PORT: "1884" });
  assert.equal(seed.mqtt.url, "mqtt://broker:1884");
  assert.equal(seed.mqtt.protocolVersion, 5);
  assert.equal(loadConfig({ MQTT_BROKER_HOST: "broker" }).mqtt.url, "mqtt://broker:2834");
});

Deno.test("empty strings count as unset", () => {
  const c = loadConfig({ REDIS_URL: "", MQTT_KEEPALIVE: " " });
  assert.equal(c.redis.url, undefined);
  assert.equal(c.mqtt.keepalive, 60);
});

Deno.test("a bad value is an error naming the variable, never a silent default", () => {
  const cases: [Record<string, string>, string][] = [
    [{ MQTT_KEEPALIVE: "abc" }, "MQTT_KEEPALIVE"],
    [{ HTTP_PORT: "70000" }, "HTTP_PORT"],
    [{ REDIS_URL: "localhost:6379" }, "REDIS_URL"],
    [{ DATABASE_URL: "postgres://x/y" }, "DATABASE_URL"],
    [{ MQTT_RECONNECT_DELAY: "-1" }, "MQTT_RECONNECT_DELAY"],
    [{ GATEWAY_ROLES: "uplink,teleport" }, "GATEWAY_ROLES"],
    [{ API_TOKEN: "short" }, "API_TOKEN"],
    [{ MQTT_ALLOW_ANONYMOUS: "maybe" }, "MQTT_ALLOW_ANONYMOUS"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
  ];
  for (const [env, name] of cases) {
    assert.throws(() => loadConfig(env), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `${name}: ${e}`);
      assert.equal(e.variable, name);
      assert.match(e.message, new RegExp(`^Invalid ${name}: `));
      return true;
    });
  }
});

Deno.test("roles select parts of the gateway", () => {
  assert.deepEqual([...loadConfig({ GATEWAY_ROLES: "uplink, worker" }).roles], ["uplink", "worker"]);
});

Deno.test("a bad value's error never shows a secret or a URL's user and password", () => {
  const cases: [Record<string, string>, string, string[]][] = [
    [{ API_TOKEN: "abcdefghijklmno" }, "API_TOKEN", ["abcdefghijklmno"]],
    [{ EMQX_HOOK_SECRET: "hook-secret" }, "EMQX_HOOK_SECRET", ["hook-secret"]],
    [{ DATABASE_URL: "mysql://gw:s3cr3t-pw@db:99999/gw" }, "DATABASE_URL", ["s3cr3t-pw", "gw:"]],
    [{ REDIS_URL: "redis://:r3d1s-pw@cache:123456/0" }, "REDIS_URL", ["r3d1s-pw"]],
    // Malformed: a password with an unencoded "@" is hidden as a whole too.
    [{ DATABASE_URL: "mysql://gw:p@ss-w0rd@db:99999/gw" }, "DATABASE_URL", ["ss-w0rd", "p@ss"]],
    [{ MQTT_URL: "mqtt://gw:mq-pw@broker:0x1/" }, "MQTT_URL", ["mq-pw"]],
    [{ ALERT_WEBHOOK_URL: "ftp://hooks.example.com/T000/B000/xyzzy-secret" }, "ALERT_WEBHOOK_URL", [
      "xyzzy-secret",
    ]],
    [{ EMQX_API_URL: "http://emqx:18083", EMQX_API_KEY: "key-1" }, "EMQX_API_URL", ["key-1"]],
  ];
  for (const [env, name, secrets] of cases) {
    assert.throws(() => loadConfig(env), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `${name}: ${e}`);
      assert.equal(e.variable, name);
      const shown = `${e.message} ${JSON.stringify(e.cause ?? null)}`;
      for (const secret of secrets) assert.ok(!shown.includes(secret), `${name} shows ${secret}: ${shown}`);
      return true;
    });
  }
  // What is not secret is still shown, so the mistake can be found.
  assert.throws(() => loadConfig({ DATABASE_URL: "mysql://gw:pw@db:99999/gw" }), /\*\*\*@db:99999\/gw/);
  assert.throws(() => loadConfig({ HTTP_PORT: "70000" }), /got "70000"/);
});

Deno.test("risky settings are named with their consequence", async () => {
  const { riskySettings } = await import("./config.ts");
  const external = {
    MQTT_URL: "mqtt://emqx:1883",
    EMQX_API_URL: "http://emqx:18083",
    EMQX_API_KEY: "k",
    EMQX_API_SECRET: "s",
  };
  assert.deepEqual(riskySettings(loadConfig(external)), []);
  assert.deepEqual(riskySettings(loadConfig({})), []);
  const expiry = riskySettings(loadConfig({ ...external, MQTT_SESSION_EXPIRY: "0" }));
  assert.equal(expiry.length, 1);
  assert.match(expiry[0]!, /MQTT_SESSION_EXPIRY=0 .*dropped; lost sales/);
  // Not for a gateway without the uplink role.
  assert.deepEqual(
    riskySettings(loadConfig({ ...external, MQTT_SESSION_EXPIRY: "0", GATEWAY_ROLES: "api" })),
    [],
  );
  assert.match(
    riskySettings(loadConfig({ MQTT_ALLOW_ANONYMOUS: "true" })).join(),
    /publish .* as any machine/,
  );
  assert.match(
    riskySettings(loadConfig({ MQTT_URL: "mqtt://emqx:1883" })).join(),
    /no EMQX_API_URL: .*open session .* stays up/,
  );
  assert.match(riskySettings(loadConfig({ GATEWAY_ROLES: "api,worker" })).join(), /another process/);
});

Deno.test("REDIS_URL: one server, a Cluster's seed nodes or a Sentinel set", () => {
  const forms = [
    "redis://127.0.0.1:6379/0",
    "rediss://:pw@redis.example:6380",
    "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
    "redis+cluster://app:pw@n1:7000,[::1]:7001",
    "redis+sentinel://s1:26379,s2:26379/mymaster",
    "redis+sentinel://:pw@s1:26379/mymaster/2",
  ];
  for (const url of forms) assert.equal(loadConfig({ REDIS_URL: url }).redis.url, url);
});

Deno.test("a bad REDIS_URL says what is wrong and never shows the password", () => {
  const cases: [string, RegExp][] = [
    ["redis+cluster://app:hunter2secret@", /names no seed node/],
    [
      "redis+cluster://app:hunter2secret@n1,n2:7000",
      /node \(number 1 in the list\) is not host:port|not host:port/,
    ],
    ["redis+cluster://:hunter2secret@n1:7000/3", /only database 0/],
    ["redis+sentinel://:hunter2secret@s1:26379", /names no master/],
    ["redis+sentinel://:hunter2secret@s1:26379/m/x", /not a whole number/],
    ["redis+cluster://:hunter2secret,n1:7000", /not host:port/],
    ["redis+mesh://:hunter2secret@n1:7000", /must start with/],
  ];
  for (const [url, reason] of cases) {
    assert.throws(() => loadConfig({ REDIS_URL: url }), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `${url}: ${e}`);
      assert.equal(e.variable, "REDIS_URL");
      assert.match(e.message, reason);
      assert.doesNotMatch(e.message, /hunter2secret/, `the password shows in: ${e.message}`);
      return true;
    });
  }
  assert.throws(() => loadConfig({ API_TOKEN: "hunter2" }), (e: unknown) => {
    assert.doesNotMatch((e as Error).message, /hunter2/);
    return true;
  });
});

Deno.test("REDIS_WAIT_REPLICAS: 1 behind Sentinel (a failover must not lose a stored job), else 0", () => {
  assert.equal(loadConfig({ REDIS_URL: "redis://r:6379/0" }).redis.waitReplicas, 0);
  assert.equal(loadConfig({ REDIS_URL: "redis+cluster://a:1,b:2" }).redis.waitReplicas, 0);
  assert.equal(loadConfig({ REDIS_URL: "redis+sentinel://s:26379/m" }).redis.waitReplicas, 1);
  assert.equal(
    loadConfig({ REDIS_URL: "redis+sentinel://s:26379/m", REDIS_WAIT_REPLICAS: "0" }).redis.waitReplicas,
    0,
  );
  assert.equal(loadConfig({ REDIS_WAIT_REPLICAS: "2" }).redis.waitReplicas, 2);
  assert.equal(loadConfig({}).drainOnStop, false);
  assert.equal(loadConfig({ GATEWAY_DRAIN_ON_STOP: "true" }).drainOnStop, true);
});

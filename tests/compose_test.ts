/**
 * @module compose_test
 * No Docker engine runs where this is tested, so `compose.yaml` and the `Dockerfile` are checked as
 * text: the images and ports the issue names, healthchecks, start order on health, memory limits,
 * EMQX asking the gateway's hooks, a non-root multi-stage image on Deno's official image, and —
 * the part that breaks silently — every variable passed to the gateway is one config.ts reads, and
 * the whole set is a valid configuration whose permission set reaches the other services. The same
 * for the `cluster` profile: two EMQX nodes that name each other, a Sentinel set monitoring the
 * master the gateways' REDIS_URL names, two gateways in one share group that drain on stop.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { netAllowList, permissionFlags } from "../launcher/permission_flags.ts";
import { parseRedisUrl } from "../queue/redis/redis_url.ts";
import { deployedConfig } from "./deployed_config.ts";
import { REPO_ROOT } from "./launched_gateway.ts";

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  hostname?: string;
  command?: string[];
  networks?: { default?: { aliases?: string[] } };
  stop_grace_period?: string;
  ports?: string[];
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test: string | string[] };
  depends_on?: Record<string, { condition: string }>;
  mem_limit?: string;
  volumes?: string[];
}

// `<<:` merge keys, as Docker Compose reads them (the cluster profile's services share fragments).
const compose = parse(await Deno.readTextFile(join(REPO_ROOT, "compose.yaml")), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const gateway = services.gateway!;
/** What a plain `docker compose up` starts: the services without a profile. */
const defaults = Object.keys(services).filter((name) => !services[name]!.profiles);
/** The `cluster` profile's services, by kind. */
const cluster = Object.keys(services).filter((name) => services[name]!.profiles?.includes("cluster"));
const emqxNodes = cluster.filter((name) => services[name]!.image?.startsWith("emqx/"));
const redisBoxes = cluster.filter((name) => services[name]!.image?.startsWith("redis:"));
const clusterGateways = cluster.filter((name) => services[name]!.build === ".");

/** What compose gives the container: `${NAME:-default}` → default (nothing set), `$$` → `$`. */
function interpolate(value: string): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (match, _name, fallback) => match === "$$" ? "$" : fallback ?? "",
  );
}

/** A service's environment as its container gets it. */
function envOf(name: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(services[name]!.environment ?? {}).map(([k, v]) => [k, interpolate(String(v ?? ""))]),
  );
}

function gatewayEnv(): Record<string, string> {
  return envOf("gateway");
}

Deno.test("compose: the four services on the images the issue names, EMQX's three ports", () => {
  assert.deepEqual(defaults.sort(), ["emqx", "gateway", "mysql", "redis"]);
  assert.equal(services.emqx!.image, "emqx/emqx:5.10.3");
  assert.equal(services.redis!.image, "redis:7");
  assert.equal(services.mysql!.image, "mysql:8");
  assert.equal(gateway.build, ".", "the gateway is built from this repository's Dockerfile");
  const published = (services.emqx!.ports ?? []).map((p) => String(p).split(":").at(-1));
  for (const port of ["1883", "8083", "18083"]) assert.ok(published.includes(port), `EMQX publishes ${port}`);
});

Deno.test("compose: every service has a healthcheck; the gateway starts after the others are healthy", () => {
  for (const [name, service] of Object.entries(services)) {
    assert.ok(service.healthcheck?.test, `${name} has a healthcheck`);
    assert.ok(service.mem_limit, `${name} has a mem_limit`);
  }
  assert.deepEqual(gateway.depends_on, {
    emqx: { condition: "service_healthy" },
    redis: { condition: "service_healthy" },
    mysql: { condition: "service_healthy" },
  });
  const env = gatewayEnv();
  const probe = [gateway.healthcheck!.test].flat().join(" ");
  assert.match(
    probe,
    new RegExp(`127\\.0\\.0\\.1:${env.HTTP_PORT}/healthz`),
    "the healthcheck asks /healthz",
  );
});

Deno.test("compose: every variable passed to the gateway is one config.ts reads, and together they load", () => {
  const config = deployedConfig(gatewayEnv(), "gateway");
  assert.equal(config.mqtt.url, "mqtt://emqx:1883");
  assert.ok(config.mqtt.username && config.mqtt.password, "the gateway has its own broker identity");
  const net = netAllowList(config);
  for (const host of ["emqx:1883", "redis:6379", "mysql:3306", `0.0.0.0:${config.http.port}`]) {
    assert.ok(net.includes(host), `${host} in ${net.join(",")}`);
  }
  assert.ok(permissionFlags(config).includes(`--allow-write=${config.database.dataDir}`));
  assert.ok(
    (gateway.volumes ?? []).some((v) => v.endsWith(`:${config.database.dataDir}`)),
    "DATA_DIR is a volume",
  );
  const ports = (gateway.ports ?? []).map((p) => String(p).split(":").at(-1));
  assert.ok(ports.includes(String(config.http.port)), "the HTTP port is published");
});

Deno.test("compose: EMQX authenticates and authorizes through the gateway's hooks, deny by default", () => {
  const env = envOf("emqx");
  const port = gatewayEnv().HTTP_PORT;
  const authn = env.EMQX_AUTHENTICATION ?? "";
  assert.match(authn, /backend = http/);
  assert.ok(authn.includes(`url = "http://gateway:${port}/emqx/authn"`), authn);
  for (const field of ["clientid", "username", "password"]) {
    assert.ok(authn.includes(`${field} = "\${${field}}"`), `authn body has ${field}`);
  }
  const authz = env.EMQX_AUTHORIZATION__SOURCES ?? "";
  assert.match(authz, /type = http/);
  assert.ok(authz.includes(`url = "http://gateway:${port}/emqx/authz"`), authz);
  for (const field of ["clientid", "username", "topic", "action"]) {
    assert.ok(authz.includes(`${field} = "\${${field}}"`), `authz body has ${field}`);
  }
  assert.equal(env.EMQX_AUTHORIZATION__NO_MATCH, "deny");
  // EMQX sends the gateway's EMQX_HOOK_SECRET, so the hooks answer EMQX alone.
  const secret = gatewayEnv().EMQX_HOOK_SECRET;
  assert.ok(secret && secret.length >= 16, "the gateway has a hook secret");
  for (const hook of [authn, authz]) assert.ok(hook.includes(`"x-hook-secret" = "${secret}"`), hook);

  // The same hooks as the stand-alone EMQX configuration in deploy/emqx/http/emqx.conf.
  const conf = Deno.readTextFileSync(join(REPO_ROOT, "deploy/emqx/http/emqx.conf"));
  const urls = [...conf.matchAll(/url = "([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(urls, [`http://gateway:${port}/emqx/authn`, `http://gateway:${port}/emqx/authz`]);
  const fields = (text: string) => [...text.matchAll(/(\w+) = "\$\{(\w+)\}"/g)].map((m) => `${m[1]}=${m[2]}`);
  assert.deepEqual([...fields(authn), ...fields(authz)], fields(conf), "the same request bodies");
});

/** Seconds in a compose duration such as `90s` or `1m30s`. */
function seconds(duration: string): number {
  const parts = [...duration.matchAll(/(\d+)(h|m|s)/g)];
  assert.equal(parts.map((p) => p[0]).join(""), duration, `a duration: ${duration}`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * { h: 3600, m: 60, s: 1 }[unit!]!, 0);
}

Deno.test("compose cluster: its services, beside (not instead of) the default ones", () => {
  assert.deepEqual(emqxNodes, ["emqx-1", "emqx-2"]);
  assert.deepEqual(redisBoxes, ["redis-1", "redis-2", "redis-sentinel-3"]);
  assert.deepEqual(clusterGateways, ["gateway-1", "gateway-2"]);
  assert.deepEqual([...defaults, ...cluster].sort(), Object.keys(services).sort(), "no other profile");
  for (const name of cluster) assert.deepEqual(services[name]!.profiles, ["cluster"], name);
  // `--profile cluster up` without service names starts the default services too: no host port twice.
  const published = Object.values(services).flatMap((s) =>
    (s.ports ?? []).map((p) => String(p).split(":")[0])
  );
  assert.deepEqual(published.filter((p, i) => published.indexOf(p) !== i), [], "host ports published twice");
  assert.ok(services.emqx!.image?.startsWith("emqx/emqx:5."), "EMQX 5 in both profiles");
  for (const node of emqxNodes) assert.match(services[node]!.image!, /^emqx\/emqx:5\./);
});

Deno.test("compose cluster: every dependency exists in the profile and is waited for on its healthcheck", () => {
  for (const name of cluster) {
    for (const [dependency, { condition }] of Object.entries(services[name]!.depends_on ?? {})) {
      assert.ok(defaults.includes(dependency) || cluster.includes(dependency), `${name} → ${dependency}`);
      if (condition === "service_healthy") assert.ok(services[dependency]!.healthcheck, dependency);
    }
  }
  // A gateway needs every node its configuration names: both EMQX nodes (either may serve its
  // share group), every Redis box (the sentinels it asks, the master they name) and MySQL.
  for (const name of clusterGateways) {
    const waited = Object.entries(services[name]!.depends_on ?? {})
      .filter(([, { condition }]) => condition === "service_healthy").map(([dependency]) => dependency);
    assert.deepEqual(waited.sort(), [...emqxNodes, ...redisBoxes, "mysql"].sort(), name);
  }
});

Deno.test("compose cluster: two gateways, own client ids, one share group, a drain on stop that has time", () => {
  const configs = clusterGateways.map((name) => deployedConfig(envOf(name), name));
  assert.equal(new Set(configs.map((c) => c.mqtt.clientId)).size, configs.length, "distinct MQTT_CLIENT_IDs");
  assert.equal(new Set(configs.map((c) => c.mqtt.shareGroup)).size, 1, "the same MQTT_SHARE_GROUP");
  assert.ok(configs[0]!.mqtt.shareGroup, "a share group: a drain hands the load to the other");
  // One gateway on each node: the share group spans the cluster.
  assert.deepEqual(configs.map((c) => new URL(c.mqtt.url!).hostname).sort(), emqxNodes);
  for (const [i, name] of clusterGateways.entries()) {
    const config = configs[i]!;
    assert.equal(config.drainOnStop, true, `${name}: GATEWAY_DRAIN_ON_STOP`);
    // The drain gives up after 60 s (app/gateway.ts), then the shutdown runs; docker stop SIGKILLs
    // at stop_grace_period (10 s by default).
    assert.ok(seconds(services[name]!.stop_grace_period ?? "10s") > 60, `${name}: stop_grace_period`);
    assert.equal(config.redis.waitReplicas, 1, "behind Sentinel a push waits for the replica");
    // The launcher's --allow-net: the broker, MySQL, and every Redis box on every port — the
    // sentinels, and the master wherever a failover puts it.
    const net = netAllowList(config);
    for (const host of [`${new URL(config.mqtt.url!).hostname}:1883`, "mysql:3306", ...redisBoxes]) {
      assert.ok(net.includes(host), `${name}: ${host} in ${net.join(",")}`);
    }
    assert.ok(
      (services[name]!.volumes ?? []).some((v) => v.endsWith(`:${config.database.dataDir}`)),
      `${name}: DATA_DIR is a volume`,
    );
  }
});

Deno.test("compose cluster: the EMQX nodes name each other as seeds and ask the gateways' hooks", () => {
  const names = emqxNodes.map((node) => envOf(node).EMQX_NODE__NAME!);
  for (const node of emqxNodes) {
    const env = envOf(node);
    const host = env.EMQX_NODE__NAME!.split("@")[1]!;
    // Long names: the host part needs a dot, and the other node must resolve it.
    assert.match(host, /\./, `${node}: a node name's host is a name with a dot`);
    assert.equal(services[node]!.hostname, host, `${node}: hostname`);
    assert.ok(services[node]!.networks?.default?.aliases?.includes(host), `${node}: ${host} resolves`);
    assert.equal(env.EMQX_CLUSTER__DISCOVERY_STRATEGY, "static");
    const seeds = env.EMQX_CLUSTER__STATIC__SEEDS!.match(/^\[(.*)\]$/)![1]!.split(",").map((s) => s.trim());
    assert.deepEqual(seeds.sort(), [...names].sort(), `${node}: the seeds are all the nodes`);
    assert.equal(env.EMQX_NODE__COOKIE, envOf(emqxNodes[0]!).EMQX_NODE__COOKIE, "one cookie");

    // The same hooks as the single `emqx`, asking an address that every cluster gateway answers.
    const url = env.EMQX_AUTHENTICATION!.match(/url = "http:\/\/([^:/]+):(\d+)\/emqx\/authn"/)!;
    const [, alias, port] = url;
    for (const gw of clusterGateways) {
      assert.ok(services[gw]!.networks?.default?.aliases?.includes(alias!), `${gw} answers to ${alias}`);
      assert.equal(envOf(gw).HTTP_PORT, port, `${gw} listens on ${port}`);
      assert.equal(envOf(gw).EMQX_HOOK_SECRET, envOf("gateway").EMQX_HOOK_SECRET);
    }
    const single = envOf("emqx");
    const here = (text: string) => text.replaceAll("http://gateway:", `http://${alias}:`);
    for (
      const key of ["EMQX_AUTHENTICATION", "EMQX_AUTHORIZATION__SOURCES", "EMQX_AUTHORIZATION__NO_MATCH"]
    ) {
      assert.equal(env[key], here(single[key]!), `${node}: ${key} as on emqx`);
    }
  }
});

Deno.test("compose cluster: the sentinels watch the master the gateways' REDIS_URL names", () => {
  const urls = new Set(clusterGateways.map((gw) => envOf(gw).REDIS_URL!));
  assert.equal(urls.size, 1, "one REDIS_URL");
  const target = parseRedisUrl([...urls][0]!);
  assert.equal(target.kind, "sentinel");
  if (target.kind !== "sentinel") return;

  interface Box {
    name: string;
    announce: string;
    sentinelPort: number;
    monitor: { name: string; host: string; port: number; quorum: number };
    replicaOf?: string;
    dataNode: boolean;
  }
  const boxes: Box[] = redisBoxes.map((name) => {
    const env = envOf(name);
    const script = interpolate(services[name]!.command!.join(" "));
    assert.match(script, /sentinel resolve-hostnames yes/, `${name}: Sentinel takes the hosts' names`);
    assert.match(script, /sentinel announce-hostnames yes/, `${name}: and hands out names, not addresses`);
    // ANNOUNCE: the name this box's Sentinel, and its Redis as a replica, give of themselves.
    assert.ok(script.includes("sentinel announce-ip $ANNOUNCE"), `${name}: its Sentinel announces ANNOUNCE`);
    assert.ok(script.includes("replica-announce-ip $ANNOUNCE"), `${name}: its Redis announces ANNOUNCE`);
    const [, mName, host, port, quorum] = script.match(/sentinel monitor (\S+) (\S+) (\d+) (\d+)/)!;
    return {
      name,
      announce: env.ANNOUNCE!,
      sentinelPort: Number(script.match(/"port (\d+)"/)![1]),
      monitor: { name: mName!, host: host!, port: Number(port), quorum: Number(quorum) },
      replicaOf: env.REPLICA_OF,
      dataNode: !env.SENTINEL_ONLY,
    };
  });
  // Each box announces the name the others (and the gateways) reach it by.
  for (const box of boxes) assert.equal(box.announce, box.name);
  assert.deepEqual(
    boxes.map((b) => `${b.announce}:${b.sentinelPort}`).sort(),
    target.sentinels.map((s) => `${s.host}:${s.port}`).sort(),
    "REDIS_URL lists every sentinel",
  );
  const masters = boxes.filter((b) => b.dataNode && !b.replicaOf);
  const replicas = boxes.filter((b) => b.dataNode && b.replicaOf);
  assert.equal(masters.length, 1, "one master");
  assert.ok(replicas.length >= 1, "a replica");
  for (const replica of replicas) {
    assert.equal(replica.replicaOf, masters[0]!.name, `${replica.name} follows`);
  }
  for (const box of boxes) {
    assert.deepEqual(
      box.monitor,
      { name: target.masterName, host: masters[0]!.name, port: 6379, quorum: box.monitor.quorum },
      `${box.name}: monitors the master REDIS_URL names`,
    );
    // A failover needs the quorum to agree it is down and a majority of sentinels to elect.
    assert.ok(box.monitor.quorum > boxes.length / 2, `${box.name}: quorum ${box.monitor.quorum}`);
  }
  assert.ok(boxes.length >= 3, "three sentinels: one lost still leaves a majority");
});

Deno.test("Dockerfile: multi-stage on Deno's official image (the tested version), non-root, no -A", async () => {
  const text = await Deno.readTextFile(join(REPO_ROOT, "Dockerfile"));
  const lines = text.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
  const froms = lines.filter((l) => /^FROM\s/i.test(l));
  assert.equal(froms.length, 2, "two stages");
  for (const from of froms) assert.match(from, new RegExp(`^FROM denoland/deno:${Deno.version.deno}\\b`));
  assert.match(froms[0]!, /\sAS\s+build$/i);
  assert.ok(lines.some((l) => /^COPY\s+--from=build\s/.test(l)), "the runtime stage copies the bundles");
  assert.ok(lines.some((l) => /deno task bundle/.test(l)), "the build stage runs deno task bundle");
  const final = lines.slice(lines.indexOf(froms[1]!));
  const users = final.filter((l) => /^USER\s/i.test(l)).map((l) => l.split(/\s+/)[1]);
  assert.ok(users.length > 0 && !["root", "0"].includes(users.at(-1)!), `runs as ${users.at(-1)}`);
  const entrypoint = JSON.parse(final.find((l) => /^ENTRYPOINT\s/.test(l))!.replace(/^ENTRYPOINT\s+/, ""));
  assert.deepEqual(entrypoint.slice(-2), ["launch.js", "gateway.js"], "started through the launcher");
  assert.ok(!entrypoint.some((a: string) => /^(-A|--allow-all)$/.test(a)), entrypoint.join(" "));
  assert.ok(final.some((l) => /^HEALTHCHECK\s/.test(l)), "a HEALTHCHECK");
  assert.ok(final.some((l) => l.includes("/healthz")), "that asks /healthz");
});

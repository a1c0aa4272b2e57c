/**
 * @module compose_test
 * No Docker engine runs where this is tested, so `compose.yaml` and the `Dockerfile` are checked as
 * text: the images and ports the issue names, healthchecks, start order on health, memory limits,
 * EMQX asking the gateway's hooks, a non-root multi-stage image on Deno's official image, and —
 * the part that breaks silently — every variable passed to the gateway is one config.ts reads, and
 * the whole set is a valid configuration whose permission set reaches the other services.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { CONFIG_VARIABLES, loadConfig } from "../config.ts";
import { netAllowList, permissionFlags } from "../launcher/permission_flags.ts";
import { REPO_ROOT } from "./launched_gateway.ts";

interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test: string | string[] };
  depends_on?: Record<string, { condition: string }>;
  mem_limit?: string;
  volumes?: string[];
}

const compose = parse(await Deno.readTextFile(join(REPO_ROOT, "compose.yaml"))) as {
  services: Record<string, Service>;
};
const services = compose.services;
const gateway = services.gateway!;

/** What compose gives the container: `${NAME:-default}` → default (nothing set), `$$` → `$`. */
function interpolate(value: string): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (match, _name, fallback) => match === "$$" ? "$" : fallback ?? "",
  );
}

function gatewayEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(gateway.environment ?? {}).map(([k, v]) => [k, interpolate(String(v ?? ""))]),
  );
}

Deno.test("compose: the four services on the images the issue names, EMQX's three ports", () => {
  assert.deepEqual(Object.keys(services).sort(), ["emqx", "gateway", "mysql", "redis"]);
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
  const env = gatewayEnv();
  const unknown = Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name));
  assert.deepEqual(unknown, [], "variables config.ts does not know (a typo here is silently ignored)");
  const config = loadConfig(env);
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
  const env = Object.fromEntries(
    Object.entries(services.emqx!.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]),
  );
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

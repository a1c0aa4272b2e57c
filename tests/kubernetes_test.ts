/**
 * @module kubernetes_test
 * No Kubernetes cluster runs where this is tested, so `deploy/kubernetes/gateway.yaml` is checked as
 * text: a StatefulSet (stable client ids from the pod name), the drain on SIGTERM with a grace
 * period longer than the drain's limit, readiness on /readyz and liveness on /healthz, and every
 * variable passed to the gateway one that config.ts reads, together a valid configuration.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { deployedConfig } from "./deployed_config.ts";
import { REPO_ROOT } from "./launched_gateway.ts";

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: unknown; secretKeyRef?: { name: string; key: string } };
}

const docs = parseAllDocuments(await Deno.readTextFile(join(REPO_ROOT, "deploy/kubernetes/gateway.yaml")))
  // deno-lint-ignore no-explicit-any
  .map((d) => d.toJS() as any);
const statefulSet = docs.find((d) => d.kind === "StatefulSet");
const pod = statefulSet.spec.template.spec;
const container = pod.containers[0];
const env = container.env as EnvVar[];

/** What the pod's environment would be, with stand-ins for the Secret's values. */
function podEnv(podName: string): Record<string, string> {
  const secrets: Record<string, string> = {
    "mqtt-password": "pw",
    "redis-url": "redis+sentinel://:pw@redis-sentinel-0.redis:26379,redis-sentinel-1.redis:26379/mymaster",
    "database-url": "mysql://gateway:pw@mysql:3306/star_cloud",
    "api-token": "k8s-api-token-0123456789",
  };
  const out: Record<string, string> = {};
  for (const v of env) {
    if (v.valueFrom?.fieldRef) out[v.name] = podName;
    else if (v.valueFrom?.secretKeyRef) out[v.name] = secrets[v.valueFrom.secretKeyRef.key]!;
    else out[v.name] = (v.value ?? "").replace(/\$\(([A-Z_]+)\)/g, (_, name) => out[name] ?? "");
  }
  return out;
}

Deno.test("kubernetes: a StatefulSet whose pods have stable client ids and drain on SIGTERM", () => {
  assert.equal(statefulSet.spec.serviceName, "star-cloud-gateway-pods");
  assert.ok(statefulSet.spec.replicas >= 2, "several gateways share the uplink");
  const config = deployedConfig(podEnv("gateway-1"), "gateway-1", ["POD_NAME"]);
  assert.equal(config.mqtt.clientId, "gateway-1", "MQTT_CLIENT_ID is the pod's name");
  assert.equal(config.drainOnStop, true);
  assert.ok(config.mqtt.shareGroup, "a share group: a drain hands the load to the others");
  assert.ok(pod.terminationGracePeriodSeconds > 60, "the grace period covers the drain's 60 s limit");
  assert.equal(config.redis.waitReplicas, 1, "behind Sentinel a push waits for a replica");
});

Deno.test("kubernetes: every variable is one config.ts reads; probes on /readyz and /healthz", () => {
  // POD_NAME is only expanded into MQTT_CLIENT_ID.
  deployedConfig(podEnv("gateway-0"), "gateway-0", ["POD_NAME"]);
  assert.equal(container.readinessProbe.httpGet.path, "/readyz");
  assert.equal(container.livenessProbe.httpGet.path, "/healthz");
  assert.equal(container.ports[0].containerPort, Number(podEnv("gateway-0").HTTP_PORT));
});

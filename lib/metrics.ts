/**
 * @module metrics
 * The gateway's Prometheus metrics, on a registry of their own (one per gateway instance, so
 * tests that build several do not share counters). `/metrics` prints them; `/mqtt/status` reads them.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import denoJson from "../deno.json" with { type: "json" };
import { registerProcessMetrics } from "./process_metrics.ts";

export type Metrics = ReturnType<typeof createMetrics>;

/** Reads a queue's depth by state (`{ready, processing, delayed, dead}`). */
export type DepthSource = () => Promise<object>;

/** How long one scrape waits for a queue's depth before keeping the last values. */
const DEPTH_TIMEOUT_MS = 1000;

export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  const depthSources = new Map<string, DepthSource>();
  registerProcessMetrics(registry, { version: denoJson.version });
  const m = {
    registry,
    /** Reads this queue's depth on every scrape (`gateway_queue_depth`). */
    watchQueueDepth(queue: string, depth: DepthSource): void {
      depthSources.set(queue, depth);
    },
    received: new Counter({
      name: "gateway_mqtt_received_total",
      help: "Uplink MQTT messages received, by job type",
      labelNames: ["type"] as const,
      registers,
    }),
    queued: new Counter({
      name: "gateway_mqtt_queued_total",
      help: "Uplink messages stored in the incoming queue, by job type",
      labelNames: ["type"] as const,
      registers,
    }),
    acked: new Counter({
      name: "gateway_mqtt_acked_total",
      help: "Uplink messages acknowledged to the broker (PUBACK) after being stored or rejected",
      labelNames: ["type"] as const,
      registers,
    }),
    rejected: new Counter({
      name: "gateway_mqtt_rejected_total",
      help:
        "Uplink messages rejected before queueing, by reason and job type (unknown: no type in the topic)",
      labelNames: ["reason", "type"] as const,
      registers,
    }),
    jobs: new Counter({
      name: "gateway_jobs_total",
      help: "Jobs finished by the worker, by type and outcome (done, retried, dead)",
      labelNames: ["type", "outcome"] as const,
      registers,
    }),
    deadLettered: new Counter({
      name: "gateway_dead_lettered_total",
      help: "Messages and jobs moved to a dead-letter list, by queue",
      labelNames: ["queue"] as const,
      registers,
    }),
    reclaimed: new Counter({
      name: "gateway_queue_reclaimed_total",
      help: "Jobs put back at the head of a queue from consumers whose liveness lapsed (a gateway " +
        "gone without closing) by another process's sweep, by queue",
      labelNames: ["queue"] as const,
      registers,
    }),
    jobDuration: new Histogram({
      name: "gateway_job_batch_duration_seconds",
      help: "Time to run one batch of jobs of one type",
      labelNames: ["type"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    commands: new Counter({
      name: "gateway_commands_total",
      help: "Downlink command lifecycle transitions, by status reached",
      labelNames: ["status"] as const,
      registers,
    }),
    brokerConnected: new Gauge({
      name: "gateway_mqtt_connected",
      help: "1 while the gateway's MQTT client is connected",
      labelNames: ["client"] as const,
      registers,
    }),
    queueDepth: new Gauge({
      name: "gateway_queue_depth",
      help: "Jobs in a queue, by queue and state (ready, processing, delayed, dead)",
      labelNames: ["queue", "state"] as const,
      registers,
      // Read at scrape time; a queue backend that is down or slow keeps the last values rather
      // than failing or stalling the scrape.
      async collect() {
        await Promise.all([...depthSources].map(async ([queue, depth]) => {
          let timer: ReturnType<typeof setTimeout> | undefined;
          try {
            const timeout = new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error("timed out")), DEPTH_TIMEOUT_MS);
            });
            const value = await Promise.race([depth(), timeout]);
            for (const [state, n] of Object.entries(value)) {
              if (typeof n === "number") this.set({ queue, state }, n);
            }
          } catch {
            // keep the last values
          } finally {
            clearTimeout(timer);
          }
        }));
      },
    }),
    devicesChecks: new Counter({
      name: "gateway_devices_checks_total",
      help: "Proxy health checks made by the device service, by resulting status",
      labelNames: ["status"] as const,
      registers,
    }),
    emqxHooks: new Counter({
      name: "gateway_emqx_hook_requests_total",
      help: "Calls of /emqx/authn and /emqx/authz by answer: allow, deny (checked), deny_cached (a " +
        "denial of the last seconds), deny_request (bad secret, body or input), ignore_busy / " +
        "ignore_rate (authn not checked: too many checks in flight / from this source)",
      labelNames: ["hook", "answer"] as const,
      registers,
    }),
    consoleSignIns: new Counter({
      name: "gateway_console_sign_ins_total",
      help: "Console sign-in attempts by result: ok, wrong (a wrong token, charged to its address), " +
        "limited (refused unchecked: too many wrong tokens from the address)",
      labelNames: ["result"] as const,
      registers,
    }),
    relayMessages: new Counter({
      name: "gateway_event_relay_messages_total",
      help: "Messages of the live-event relay over Redis (see docs/scaling.md): published, failed (not " +
        "published: Redis away), received (from other processes), invalid (not a relay message)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    relayEvents: new Counter({
      name: "gateway_event_relay_events_total",
      help: "Live events and presence changes carried by the relay, by direction (published, received)",
      labelNames: ["direction"] as const,
      registers,
    }),
    devicesEventsDropped: new Counter({
      name: "gateway_devices_events_dropped_total",
      help: "Device events dropped (oldest first) because the offline buffer was full",
      registers,
    }),
    memory: new Gauge({
      name: "gateway_process_memory_bytes",
      help: "Process memory from Deno.memoryUsage(), by kind",
      labelNames: ["kind"] as const,
      registers,
      collect() {
        const usage = Deno.memoryUsage();
        this.set({ kind: "rss" }, usage.rss);
        this.set({ kind: "heap_used" }, usage.heapUsed);
        this.set({ kind: "heap_total" }, usage.heapTotal);
        this.set({ kind: "external" }, usage.external);
      },
    }),
  };
  return m;
}

/** Sums a counter's values, optionally grouped by one label: `{total, by: {heartbeat: 3}}`. */
export async function counterValues(
  counter: Counter<string>,
  label?: string,
): Promise<{ total: number; by: Record<string, number> }> {
  const { values } = await counter.get();
  const by: Record<string, number> = {};
  let total = 0;
  for (const v of values) {
    total += v.value;
    if (label) {
      const key = String(v.labels[label] ?? "");
      by[key] = (by[key] ?? 0) + v.value;
    }
  }
  return { total, by };
}

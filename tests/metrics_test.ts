/**
 * @module metrics_test
 * `GET /metrics` after real traffic (Mosquitto + Redis + MariaDB): every series the operators rely
 * on is there and counts what happened — received / queued / acked / rejected per type, job
 * outcomes (done, retried, dead), batch durations, dead letters, queue depths read at scrape time,
 * command lifecycle, broker connection state and process memory.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Gateway } from "../app/gateway.ts";
import {
  machineClient,
  publishJson,
  query,
  SERVICES,
  startGateway,
  testEnv,
  uniqueId,
  waitFor,
} from "./support.ts";

type Series = Map<string, number>;

/** `name{a="1",b="2"}` → value, labels in the order the registry prints them. */
function parse(text: string): Series {
  const series: Series = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

/** The value of the one series of `name` whose labels include all of `labels` (0 when none). */
function value(series: Series, name: string, labels: Record<string, string> = {}): number {
  let found = 0;
  for (const [key, v] of series) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, l]) => key.includes(`${k}="${l}"`))) found += v;
  }
  return found;
}

async function scrape(gateway: Gateway): Promise<{ text: string; series: Series }> {
  const res = await gateway.app.request("/metrics", {
    headers: { authorization: `Bearer ${gateway.apiToken}` },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  const text = await res.text();
  return { text, series: parse(text) };
}

Deno.test("GET /metrics after traffic: every series is there and counts what happened", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config({ JOB_MAX_ATTEMPTS: "2", JOB_RETRY_BASE_MS: "20" }));
  const machine = await machineClient();
  const redis = new Redis(SERVICES.redis);
  const incoming = t.env.MQTT_INCOMING_QUEUE!;
  const outgoing = t.env.MQTT_OUTGOING_QUEUE!;
  try {
    await startGateway(gateway);
    // A statement that fails although the row passes every schema and is not a data error (a trigger
    // added for this test): the worker retries it, then dead-letters it.
    await query(
      t.db.url,
      `CREATE TRIGGER e_fail BEFORE INSERT ON machine_logs FOR EACH ROW
         IF NEW.code = 'E-FAIL' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused for the test'; END IF`,
    );
    const serial = uniqueId("MET-");
    await publishJson(machine, `machine/${serial}/heartbeat`, { current_page: 1, temperature: 25.5 });
    await publishJson(machine, `machine/${serial}/heartbeat`, { current_page: 2, temperature: 26 });
    await publishJson(machine, `machine/${serial}/transaction`, {
      transaction_id: uniqueId("T"),
      slot_no: 5,
      quantity: 1,
      amount: 35,
    });
    // Valid JSON beyond the column's range (DECIMAL(12,2)): refused by the schema, dead at once.
    await publishJson(machine, `machine/${serial}/transaction`, {
      transaction_id: uniqueId("T"),
      slot_no: 1,
      amount: 1e10,
    });
    await publishJson(machine, `machine/${serial}/error`, { code: "E-FAIL", message: "refused by SQL" });
    // Fails the transaction schema: dead-lettered by the worker at once.
    await publishJson(machine, `machine/${serial}/transaction`, { slot_no: 1 });
    // Malformed JSON: dead-lettered by the uplink; a bad serial: rejected and acknowledged.
    await publishJson(machine, `machine/${serial}/error`, '{"code": "E1", ');
    await publishJson(machine, "machine/bad*serial/heartbeat", { current_page: 1 });

    const { series } = await waitFor(
      async () => {
        const s = await scrape(gateway);
        const jobs = (type: string, outcome: string) =>
          value(s.series, "gateway_jobs_total", { type, outcome });
        return jobs("heartbeat", "done") === 2 && jobs("transaction", "done") === 1 &&
            jobs("transaction", "dead") === 2 && jobs("error", "dead") === 1 &&
            value(s.series, "gateway_mqtt_rejected_total") === 2
          ? s
          : null;
      },
      20_000,
      "the jobs to finish",
    );

    assert.equal(value(series, "gateway_mqtt_received_total", { type: "heartbeat" }), 2);
    assert.equal(value(series, "gateway_mqtt_received_total", { type: "transaction" }), 3);
    assert.equal(value(series, "gateway_mqtt_received_total", { type: "error" }), 2);
    assert.equal(value(series, "gateway_mqtt_queued_total", { type: "heartbeat" }), 2);
    assert.equal(value(series, "gateway_mqtt_queued_total", { type: "transaction" }), 3);
    assert.equal(value(series, "gateway_mqtt_queued_total", { type: "error" }), 1);
    assert.equal(value(series, "gateway_mqtt_acked_total", { type: "heartbeat" }), 2);
    assert.equal(value(series, "gateway_mqtt_acked_total", { type: "transaction" }), 3);
    assert.equal(value(series, "gateway_mqtt_acked_total", { type: "error" }), 2);
    assert.equal(value(series, "gateway_mqtt_acked_total", { type: "rejected" }), 1);
    assert.equal(value(series, "gateway_mqtt_rejected_total", { reason: "invalid_json", type: "error" }), 1);
    assert.equal(
      value(series, "gateway_mqtt_rejected_total", { reason: "bad_serial", type: "unknown" }),
      1,
    );

    assert.ok(value(series, "gateway_jobs_total", { type: "error", outcome: "retried" }) >= 1);
    assert.equal(value(series, "gateway_jobs_total", { type: "transaction", outcome: "retried" }), 0);
    assert.equal(value(series, "gateway_dead_lettered_total", { queue: incoming }), 4);
    assert.ok(value(series, "gateway_job_batch_duration_seconds_count", { type: "heartbeat" }) >= 1);
    assert.ok(value(series, "gateway_job_batch_duration_seconds_sum", { type: "transaction" }) > 0);
    assert.ok(
      value(series, "gateway_job_batch_duration_seconds_bucket", { type: "heartbeat", le: "+Inf" }) >= 1,
    );

    // Queue depths are read on the scrape itself (no /mqtt/status call made them current).
    assert.equal(value(series, "gateway_queue_depth", { queue: incoming, state: "dead" }), 4);
    assert.equal(value(series, "gateway_queue_depth", { queue: incoming, state: "ready" }), 0);
    assert.ok(series.has(`gateway_queue_depth{queue="${outgoing}",state="ready"}`));
    await redis.rpush(`{${incoming}}:dead`, "{}", "{}");
    const later = await scrape(gateway);
    assert.equal(value(later.series, "gateway_queue_depth", { queue: incoming, state: "dead" }), 6);

    assert.equal(value(series, "gateway_mqtt_connected", { client: "gateway" }), 1);
    assert.ok(value(series, "gateway_process_memory_bytes", { kind: "rss" }) > 10 * 2 ** 20);
    assert.ok(value(series, "gateway_process_memory_bytes", { kind: "heap_used" }) > 0);

    // A command to the machine (known now that its heartbeat landed): accepted, then sent.
    const res = await gateway.app.request(`/api/v1/machines/${serial}/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.env.API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "dispense", payload: { slot_no: 5 } }),
    });
    await res.body?.cancel();
    assert.equal(res.status, 202);
    const sent = await waitFor(
      async () => {
        const s = await scrape(gateway);
        return value(s.series, "gateway_commands_total", { status: "sent" }) >= 1 ? s : null;
      },
      10_000,
      "the command to be sent",
    );
    assert.equal(value(sent.series, "gateway_commands_total", { status: "queued" }), 1);
    for (const name of ["gateway_commands_total", "gateway_queue_depth", "gateway_mqtt_connected"]) {
      assert.match(sent.text, new RegExp(`# TYPE ${name} `));
    }
  } finally {
    redis.disconnect();
    await machine.endAsync();
    await gateway.close();
    await t.cleanup();
  }
});

Deno.test("a queue backend that does not answer leaves the last depth and never fails the scrape", async () => {
  const { createMetrics } = await import("../lib/metrics.ts");
  const metrics = createMetrics();
  let calls = 0;
  metrics.watchQueueDepth("q", () => {
    calls++;
    if (calls === 1) return Promise.resolve({ ready: 7, processing: 0, delayed: 0, dead: 1 });
    return Promise.reject(new Error("redis down"));
  });
  const first = parse(await metrics.registry.metrics());
  assert.equal(value(first, "gateway_queue_depth", { queue: "q", state: "ready" }), 7);
  const second = parse(await metrics.registry.metrics());
  assert.equal(calls, 2);
  assert.equal(value(second, "gateway_queue_depth", { queue: "q", state: "ready" }), 7);
});

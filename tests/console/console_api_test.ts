/**
 * @module console_api_test
 * What the console added to the HTTP API, through a gateway in embedded mode: dead letters listed,
 * replayed (the job lands) and discarded under `/api/v1/queues/{queue}/dead-letters`; presence from
 * the embedded broker in `/api/v1/machines` (`online`, `connected_at`, `disconnected_at`) and as
 * events on `/api/v1/events`; all of it bearer-protected and in the OpenAPI document.
 */
import assert from "node:assert/strict";
import { SqliteQueue } from "../../queue/sqlite/sqlite_queue.ts";
import { queueDbPath, startConsoleGateway } from "../../tools/scripts/console_fixture.ts";
import { waitFor } from "../support.ts";

Deno.test("API: dead letters, presence in /machines and /events, bearer-protected and documented", async () => {
  const g = await startConsoleGateway({ MACHINE_ONLINE_SECONDS: "3600" });
  const auth = { authorization: `Bearer ${g.apiToken}`, "content-type": "application/json" };
  const api = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = auth,
  ) => {
    const res = await fetch(`${g.base}${path}`, {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, json: res.status === 204 ? null : await res.json() };
  };
  let events: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    assert.equal((await fetch(`${g.base}/`, { redirect: "manual" })).headers.get("location"), "/console");
    assert.equal(g.gateway.relay, undefined, "embedded mode: one process, no relay");
    const db = SqliteQueue.openDatabase(queueDbPath(g.dataDir));
    const q = new SqliteQueue(db, "mqtt_incoming_jobs", { consumerId: "api-test" });
    const job = (serial: string) =>
      JSON.stringify({
        type: "heartbeat",
        serial_no: serial,
        payload: { temperature: 1, current_page: 1 },
        received_at: new Date().toISOString(),
      });
    await q.deadLetter(null, "database down", job("DL-1"));
    await q.deadLetter(null, "database down", job("DL-2"));
    await q.close();
    db.close();

    assert.equal((await api("GET", "/api/v1/queues/incoming/dead-letters", undefined, {})).status, 401);
    const listed = await api("GET", "/api/v1/queues/incoming/dead-letters?limit=10");
    assert.equal(listed.status, 200);
    assert.equal(listed.json.total, 2);
    assert.deepEqual(listed.json.items.map((d: { reason: string }) => d.reason), [
      "database down",
      "database down",
    ]);
    const replayed = await api("POST", "/api/v1/queues/incoming/dead-letters/replay", {
      ids: [listed.json.items[0].id],
    });
    assert.deepEqual(replayed, { status: 200, json: { count: 1 } });
    await waitFor(
      async () => (await api("GET", "/api/v1/machines/DL-1")).status === 200,
      10_000,
      "the replayed job",
    );
    assert.equal(
      (await api("POST", "/api/v1/queues/incoming/dead-letters/discard", { all: true })).json.count,
      1,
    );
    assert.equal((await api("GET", "/api/v1/queues/outgoing/dead-letters")).json.total, 0);
    assert.equal((await api("POST", "/api/v1/queues/incoming/dead-letters/replay", {})).status, 422);
    assert.equal((await api("GET", "/api/v1/queues/elsewhere/dead-letters")).status, 422);

    const stream = await fetch(`${g.base}/api/v1/events?types=presence`, { headers: auth });
    assert.equal(stream.status, 200);
    events = stream.body!.getReader();
    let text = "";
    const decoder = new TextDecoder();
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await events!.read();
        if (done) throw new Error(`stream ended before ${needle}: ${text}`);
        text += decoder.decode(value);
      }
    };
    await readUntil("event: hello");

    const token = await g.issueToken("PR-1");
    const machine = await g.machine("PR-1", token);
    await readUntil('"serial":"PR-1","online":true');
    const on = await api("GET", "/api/v1/machines/PR-1");
    assert.equal(on.json.online, true);
    assert.ok(on.json.connected_at);
    assert.equal(on.json.disconnected_at, null);
    await machine.endAsync();
    await readUntil('"serial":"PR-1","online":false');
    assert.match(text, /"source":"broker"/);
    const off = await api("GET", "/api/v1/machines/PR-1");
    assert.equal(off.json.online, false, "the broker's word beats heartbeat age");
    assert.ok(off.json.disconnected_at);

    const doc = await (await fetch(`${g.base}/openapi.json`)).json();
    for (
      const path of [
        "/api/v1/queues/{queue}/dead-letters",
        "/api/v1/queues/{queue}/dead-letters/replay",
        "/api/v1/queues/{queue}/dead-letters/discard",
        "/api/v1/events",
      ]
    ) assert.ok(doc.paths[path], path);
    assert.ok(doc.components.schemas.Machine.properties.connected_at);
  } finally {
    await events?.cancel().catch(() => {});
    await g.close();
  }
});

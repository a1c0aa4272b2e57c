/**
 * @module fleet_events_test
 * Live events for the whole fleet with Redis, end to end on the real services: gateway A runs only
 * the API (`GATEWAY_ROLES=api`, no broker connection, no worker) and gateway B the uplink, worker
 * and downlink. A machine's heartbeat and sale, handled by B, appear on A's `/api/v1/events`; a
 * command accepted by A and published by B shows `sent` there; the machine's presence, learnt by
 * B, agrees in A's `/api/v1/machines`.
 */
import assert from "node:assert/strict";
import { Gateway } from "../app/gateway.ts";
import { api } from "./downlink_support.ts";
import { machineClient, publishJson, startGateway, testEnv, uniqueId, waitFor } from "./support.ts";

Deno.test("fleet events: an API-only gateway streams the heartbeat and sale another gateway's worker handled", async () => {
  const t = await testEnv();
  const id = t.env.MQTT_CLIENT_ID!;
  const a = new Gateway(t.config({ GATEWAY_ROLES: "api", MQTT_CLIENT_ID: `${id}-a` }));
  const b = new Gateway(t.config({ GATEWAY_ROLES: "uplink,worker,downlink", MQTT_CLIENT_ID: `${id}-b` }));
  const machine = await machineClient();
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    await a.start();
    await startGateway(b);
    assert.ok(a.relay && b.relay, "with Redis both relay");
    assert.equal(a.connection, undefined, "A has no broker connection: all it shows comes through Redis");

    const stream = await a.app.request("/api/v1/events", {
      headers: { authorization: `Bearer ${a.apiToken}` },
    });
    assert.equal(stream.status, 200);
    reader = stream.body!.getReader();
    let text = "";
    const decoder = new TextDecoder();
    const readUntil = async (pattern: RegExp, what: string) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`no ${what} on A's stream: ${text}`);
        const { value, done } = await reader!.read();
        if (done) throw new Error(`A's stream ended before ${what}: ${text}`);
        text += decoder.decode(value);
      }
    };
    await readUntil(/event: hello/, "hello");
    // B builds and publishes events only once it knows A has a listener (read every 2 s).
    await waitFor(() => b.hub.active && b.relay!.status().publishing, 10_000, "B to learn that A listens");

    const serial = uniqueId("FE-");
    const tx = { transaction_id: uniqueId("T"), slot_no: 3, quantity: 1, amount: 45 };
    await publishJson(machine, `machine/${serial}/heartbeat`, { current_page: 2, temperature: 4.5 });
    await publishJson(machine, `machine/${serial}/transaction`, tx);
    await readUntil(new RegExp(`"type":"heartbeat","serial":"${serial}"[^}]*"temperature":4.5`), "heartbeat");
    await readUntil(
      new RegExp(`"type":"sale","serial":"${serial}","slot":3,"quantity":1,"amount":45`),
      "sale",
    );
    // Online by B's heartbeat: B's change, applied at A and shown on A's stream.
    await readUntil(new RegExp(`"type":"presence","serial":"${serial}","online":true`), "presence");
    const machineAtA = await api(a, "GET", `/api/v1/machines/${serial}`);
    assert.equal(machineAtA.json.online, true);
    assert.equal(a.presence.get(serial)?.online, true, "A's tracker follows B's");

    const command = await api(a, "POST", `/api/v1/machines/${serial}/commands`, {
      command: "dispense",
      payload: { slot_no: 1 },
    });
    assert.equal(command.status, 202);
    const messageId = command.json.message_id as string;
    await readUntil(new RegExp(`"status":"queued","ids":\\["${messageId}"\\]`), "queued (A's own)");
    await readUntil(new RegExp(`"status":"sent","ids":\\["${messageId}"\\]`), "sent (by B's downlink)");
    assert.equal(text.split(`"type":"sale","serial":"${serial}"`).length, 2, "the sale once");

    const status = await a.status();
    const relay = status.event_relay as { processes: number; watchers: number; channel: string };
    assert.equal(relay.processes, 2, "A heard from B");
    assert.equal(relay.watchers, 1);
    assert.equal(relay.channel, `{${t.env.MQTT_INCOMING_QUEUE}}:events`);
  } finally {
    await reader?.cancel().catch(() => {});
    await machine.endAsync();
    await a.close();
    await b.close();
    await t.cleanup();
  }
});

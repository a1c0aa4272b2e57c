import assert from "node:assert/strict";
import { sqliteBackend } from "../tests/store_backends.ts";
import { EventHub, type HubEvent } from "../lib/event_hub.ts";
import { PresenceTracker } from "../lib/presence.ts";
import { observeStore } from "./store_events.ts";

Deno.test("observed store: writes pass through and become hub events and presence, after they are stored", async () => {
  const fixture = await sqliteBackend.open();
  const hub = new EventHub({ flushMs: 5 });
  const presence = new PresenceTracker({ silenceMs: 60_000, hub });
  const store = observeStore(fixture.store, hub, presence);
  try {
    const at = new Date();
    await store.recordHeartbeats([{
      serialNo: "A",
      receivedAt: at,
      temperature: 4,
      currentPage: 2,
      payload: {},
    }]);
    assert.equal(presence.get("A")?.online, true, "presence is fed without listeners");
    const events: HubEvent[] = [];
    const off = hub.subscribe((b) => events.push(...b.events));
    await store.recordHeartbeats([{
      serialNo: "A",
      receivedAt: at,
      temperature: 5,
      currentPage: 2,
      payload: {},
    }]);
    await store.recordTransactions([
      { transactionId: "T1", serialNo: "A", slotNo: 1, quantity: 1, amount: 3, receivedAt: at, payload: {} },
    ]);
    await store.recordTransactions([
      { transactionId: "T1", serialNo: "A", slotNo: 1, quantity: 1, amount: 3, receivedAt: at, payload: {} },
    ]);
    await store.recordMachineLogs([{
      serialNo: "A",
      receivedAt: at,
      code: "E",
      level: "error",
      message: "x",
      payload: {},
    }]);
    const cmd = {
      messageId: "M1",
      serialNo: "A",
      command: "dispense",
      payload: {},
      source: "api" as const,
      createdAt: at,
      expiresAt: new Date(at.getTime() + 60_000),
    };
    await store.createCommand(cmd);
    await store.markCommandsSent(["M1"], at);
    await store.recordCommandAcks([{ messageId: "M1", serialNo: "A", status: "succeeded", detail: {}, at }]);
    assert.equal((await store.getCommand("M1"))?.status, "succeeded", "other methods pass through");
    assert.equal(store.dialect, "sqlite");
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(events.map((e) => e.type === "command" ? `command:${e.status}` : e.type), [
      "heartbeat",
      "sale",
      "error",
      "command:queued",
      "command:sent",
      "command:succeeded",
    ], "the duplicate sale is no event");
    off();
  } finally {
    presence.close();
    hub.close();
    await fixture.cleanup();
  }
});

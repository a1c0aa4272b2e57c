import assert from "node:assert/strict";
import { EventHub, type HubEvent } from "./event_hub.ts";
import { PresenceTracker } from "./presence.ts";

Deno.test("presence: the broker's word wins; heartbeat age decides where it said nothing; changes are events", async () => {
  let now = new Date("2026-04-14T10:00:00Z");
  const hub = new EventHub({ flushMs: 5 });
  const events: HubEvent[] = [];
  hub.subscribe((b) => events.push(...b.events));
  const p = new PresenceTracker({ silenceMs: 60_000, hub, now: () => now });

  p.heard("A", now);
  assert.equal(p.isOnline("A", null), true);
  assert.equal(p.get("A")?.online, true);
  now = new Date(now.getTime() + 61_000);
  assert.equal(p.isOnline("A", new Date(now.getTime() - 61_000)), false, "silent longer than the window");
  p.sweep();
  assert.equal(p.get("A")?.online, false);
  assert.equal(p.get("A")?.source, "silence");

  p.brokerEvent("B", true);
  now = new Date(now.getTime() + 3600_000);
  p.sweep();
  assert.equal(p.isOnline("B", null), true, "connected by the broker's word, however quiet");
  p.brokerEvent("B", false);
  assert.equal(p.isOnline("B", now), false);
  p.heard("B", now);
  assert.equal(p.get("B")?.online, false, "a late message does not undo the broker's disconnect");
  assert.ok(p.get("B")?.connectedAt && p.get("B")?.disconnectedAt);
  assert.equal(p.isOnline("C", new Date(now.getTime() - 1000)), true, "unknown: by last_heard_at");

  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(
    events.map((e) => e.type === "presence" ? `${e.serial}:${e.online}:${e.source}` : e.type),
    ["A:true:heartbeat", "A:false:silence", "B:true:broker", "B:false:broker"],
  );
  p.close();
  hub.close();
});

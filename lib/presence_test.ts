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

Deno.test("presence: what this process learnt goes to onLocal; what another learnt applies without an event", async () => {
  const now = new Date("2026-04-14T10:00:00Z");
  const hub = new EventHub({ flushMs: 5 });
  const events: string[] = [];
  hub.subscribe((b) =>
    events.push(...b.events.map((e) => e.type === "presence" ? `${e.serial}:${e.online}` : ""))
  );
  const local: string[] = [];
  const p = new PresenceTracker({
    silenceMs: 60_000,
    hub,
    now: () => now,
    onLocal: (e) => local.push(`${e.serial}:${e.online}:${e.source}`),
  });
  const at = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
  p.heard("A", now);
  p.heard("A", now); // no change: not relayed (heartbeats are not)
  p.brokerEvent("B", true, new Date(at(1)));
  p.brokerEvent("B", true, new Date(at(2))); // no change of online, but connected_at moved: relayed
  assert.deepEqual(local, ["A:true:heartbeat", "B:true:broker", "B:true:broker"]);

  // Another process's changes: applied, true only when they change this process's view.
  assert.equal(
    p.applyRemote({ type: "presence", serial: "C", online: true, at: at(3), source: "broker" }),
    true,
  );
  assert.equal(p.get("C")?.connectedAt?.toISOString(), at(3));
  assert.equal(
    p.applyRemote({ type: "presence", serial: "C", online: true, at: at(4), source: "broker" }),
    false,
  );
  assert.equal(p.get("C")?.connectedAt?.toISOString(), at(4), "connected_at agrees even without a change");
  assert.equal(
    p.applyRemote({ type: "presence", serial: "C", online: false, at: at(3.5), source: "broker" }),
    false,
    "a broker event older than the last one known is ignored, whoever delivers it",
  );
  assert.equal(p.isOnline("C", null), true);
  p.brokerEvent("C", false, new Date(at(3.7)));
  assert.equal(p.get("C")?.connected, true, "the same holds for this process's own late $SYS event");
  assert.equal(
    p.applyRemote({ type: "presence", serial: "A", online: false, at: at(5), source: "silence" }),
    true,
  );
  assert.equal(p.get("A")?.online, false);
  assert.equal(
    p.applyRemote({ type: "presence", serial: "B", online: false, at: at(5), source: "silence" }),
    false,
  );
  assert.equal(p.get("B")?.online, true, "silence elsewhere does not beat the broker's word");
  assert.equal(
    p.applyRemote({ type: "presence", serial: "D", online: true, at: "garbage", source: "heartbeat" }),
    false,
  );
  p.applyRemote({ type: "heartbeat", serial: "A", at: at(6) });
  assert.equal(p.get("A")?.lastHeardAt?.toISOString(), at(6), "a remote heartbeat freshens last heard");
  assert.equal(p.get("A")?.online, false, "but changes nothing by itself (the origin relays its change)");
  p.heard("A", new Date(at(7)));
  assert.deepEqual(local.slice(3), ["A:true:heartbeat"], "nothing applied from elsewhere was handed on");

  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(events, ["A:true", "B:true", "A:true"], "remote changes are no events here");
  p.close();
  hub.close();
});

Deno.test("presence: with a lastHeard lookup the sweep asks before calling a machine silent", async () => {
  let now = new Date("2026-04-14T10:00:00Z");
  const local: string[] = [];
  const p = new PresenceTracker({
    silenceMs: 60_000,
    now: () => now,
    onLocal: (e) => local.push(`${e.serial}:${e.online}:${e.source}`),
  });
  const asked: string[][] = [];
  let lookup = (serials: string[]) => {
    asked.push(serials);
    // B was heard by another process's worker 10 s ago; A was not.
    return Promise.resolve(new Map([["B", new Date(now.getTime() - 10_000)], ["A", null]]));
  };
  p.start({ lastHeard: (serials) => lookup(serials) });
  p.heard("A", now);
  p.heard("B", now);
  p.brokerEvent("V", true, now);
  now = new Date(now.getTime() + 61_000);
  await p.sweep();
  assert.deepEqual(asked, [["A", "B"]], "only the silent ones, not those the broker vouches for");
  assert.equal(p.get("A")?.online, false);
  assert.equal(p.get("B")?.online, true);
  assert.equal(p.get("B")?.lastHeardAt?.getTime(), now.getTime() - 10_000);
  now = new Date(now.getTime() + 61_000);
  lookup = () => Promise.reject(new Error("database down"));
  await p.sweep();
  assert.equal(p.get("B")?.online, false, "without an answer this process's own view decides");
  assert.deepEqual(local.slice(3), ["A:false:silence", "B:false:silence"]);
  p.close();
});

/**
 * @module event_relay_test
 * Gateway processes' relays on one real Redis (a queue name of the test's own): an event made in
 * one process reaches the listeners of another, never comes back to its own, and is not even built
 * while nobody anywhere listens; presence changes travel always, apply without being passed on
 * again, and are shown once even when several processes learnt them.
 */
import assert from "node:assert/strict";
import { parseRelayMessage } from "../contract/relay_message.ts";
import { EventHub, type HubBatch, type HubEvent } from "../lib/event_hub.ts";
import { counterValues, createMetrics } from "../lib/metrics.ts";
import { PresenceTracker } from "../lib/presence.ts";
import { RedisEventChannel } from "../queue/redis/redis_event_channel.ts";
import { dropRedisKeys, SERVICES, uniqueId, waitFor } from "../tests/support.ts";
import { EventRelay } from "./event_relay.ts";

const sale = (serial: string, amount: number): HubEvent => ({
  type: "sale",
  serial,
  slot: 1,
  quantity: 1,
  amount,
  at: new Date().toISOString(),
});

interface Proc {
  name: string;
  hub: EventHub;
  presence: PresenceTracker;
  relay: EventRelay;
  metrics: ReturnType<typeof createMetrics>;
  /** Every batch this process's listener got (while listening). */
  batches: HubBatch[];
  listen(): () => void;
  close(): Promise<void>;
}

function proc(name: string, queue: string): Proc {
  const hub = new EventHub({ flushMs: 20 });
  const metrics = createMetrics();
  let relay: EventRelay | undefined = undefined;
  const presence = new PresenceTracker({ silenceMs: 60_000, hub, onLocal: (e) => relay?.presence(e) });
  relay = new EventRelay({
    hub,
    presence,
    channel: new RedisEventChannel(SERVICES.redis, queue),
    origin: `${name}:${uniqueId("")}`,
    metrics,
    watchMs: 100,
    flushMs: 20,
  });
  const batches: HubBatch[] = [];
  return {
    name,
    hub,
    presence,
    relay,
    metrics,
    batches,
    listen: () => hub.subscribe((b) => batches.push(b)),
    close: async () => {
      await relay!.close();
      await relay!.close();
      presence.close();
      hub.close();
    },
  };
}

const events = (p: Proc) => p.batches.flatMap((b) => b.events);
const published = async (p: Proc) =>
  (await counterValues(p.metrics.relayMessages, "outcome")).by.published ?? 0;

async function withProcs(n: number, run: (ps: Proc[], spy: string[]) => Promise<void>): Promise<void> {
  const queue = `${uniqueId("test:")}:mqtt_incoming_jobs`;
  const ps = ["a", "b", "c"].slice(0, n).map((name) => proc(name, queue));
  // Everything on the channel, as the back office would see it.
  const spy = new RedisEventChannel(SERVICES.redis, queue);
  const seen: string[] = [];
  try {
    await spy.open((t) => seen.push(t));
    await Promise.all(ps.map((p) => p.relay.start()));
    await run(ps, seen);
  } finally {
    await Promise.all(ps.map((p) => p.close()));
    await spy.close();
    await dropRedisKeys(queue);
  }
}

Deno.test("event relay: events reach the other processes' listeners, only while someone listens, never echoed", async () => {
  await withProcs(2, async ([a, b], spy) => {
    a!.hub.emit(sale("S-1", 1)); // nobody anywhere listens: not even built
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a!.hub.active, false);
    assert.equal(await published(a!), 0);
    assert.deepEqual(spy, [], "nothing on the channel while nobody watches");

    const offB = b!.listen();
    await waitFor(() => a!.hub.active, 3000, "a to learn that b has a listener");
    assert.equal(a!.hub.listeners, 0);
    assert.equal(a!.relay.status().watchers, 1);
    a!.hub.emit(sale("S-1", 2));
    await waitFor(() => events(b!).length === 1, 3000, "a's sale at b's listener");
    assert.deepEqual(events(b!), [{ ...sale("S-1", 2), at: (events(b!)[0] as { at: string }).at }]);
    assert.equal(b!.relay.status().processes, 2, "b counts the process it heard from");

    const offA = a!.listen();
    // Each learns of the other's listener at its own next read of the set.
    await waitFor(() => a!.relay.status().publishing && b!.relay.status().publishing, 3000, "both watching");
    assert.equal(b!.relay.status().watchers, 2);
    b!.hub.emit(sale("S-2", 3));
    a!.hub.emit(sale("S-1", 4));
    await waitFor(
      () => events(a!).length === 2 && events(b!).length === 3,
      3000,
      "each sale at both listeners",
    );
    await new Promise((r) => setTimeout(r, 200));
    const amounts = (p: Proc) => events(p).map((e) => e.type === "sale" ? e.amount : -1).sort();
    assert.deepEqual(amounts(a!), [3, 4], "a's own sale once: its message back from Redis is skipped");
    assert.deepEqual(amounts(b!), [2, 3, 4]);

    offA();
    offB();
    await waitFor(() => !a!.hub.active && !b!.hub.active, 3000, "both to learn that nobody listens");
    const before = spy.length;
    a!.hub.emit(sale("S-1", 5));
    b!.hub.emit(sale("S-2", 6));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(spy.length, before, "nothing published once the last listener left");
    assert.equal(a!.relay.status().watchers, 0);
  });
});

Deno.test("event relay: presence travels always, applies without ping-pong, and is shown once", async () => {
  await withProcs(3, async ([a, b, c], spy) => {
    const at = new Date("2026-04-14T10:00:00Z");
    // Nobody listens: the broker's word still reaches every process (for GET /api/v1/machines).
    a!.presence.brokerEvent("M-1", true, at);
    await waitFor(() => b!.presence.get("M-1")?.connected && c!.presence.get("M-1")?.connected, 3000, "M-1");
    assert.equal(b!.presence.get("M-1")?.connectedAt?.getTime(), at.getTime());
    assert.equal(b!.presence.isOnline("M-1", null), true);
    await new Promise((r) => setTimeout(r, 200));
    const origins = () => spy.map((t) => parseRelayMessage(t)!.o.split(":")[0]);
    assert.deepEqual(origins(), ["a"], "applied at b and c, passed on by neither");

    // Every process gets the same $SYS event (EMQX sends it to each): c's listener sees it once.
    c!.listen();
    await waitFor(() => a!.hub.active && b!.hub.active, 3000, "a and b to learn that c listens");
    const left = new Date(at.getTime() + 1000);
    a!.presence.brokerEvent("M-1", false, left);
    b!.presence.brokerEvent("M-1", false, left);
    await waitFor(() => events(c!).length > 0, 3000, "the disconnect at c");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(events(c!), [{
      type: "presence",
      serial: "M-1",
      online: false,
      at: left.toISOString(),
      source: "broker",
    }]);
    assert.equal(c!.presence.get("M-1")?.disconnectedAt?.getTime(), left.getTime());
    for (const p of [a!, b!, c!]) assert.equal(p.presence.isOnline("M-1", null), false, p.name);

    // A late copy of the older connect changes nothing anywhere.
    b!.presence.brokerEvent("M-1", true, at);
    await new Promise((r) => setTimeout(r, 300));
    for (const p of [a!, b!, c!]) assert.equal(p.presence.isOnline("M-1", null), false, p.name);

    // Online by heartbeat in b (no broker word): a change, relayed once, shown at c once.
    b!.presence.heard("M-2", new Date());
    b!.presence.heard("M-2", new Date());
    await waitFor(() => a!.presence.get("M-2")?.online, 3000, "M-2 online at a");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      events(c!).slice(1).map((e) => e.type === "presence" && `${e.serial}:${e.online}:${e.source}`),
      [
        "M-2:true:heartbeat",
      ],
    );
    const fromC = spy.map((t) => parseRelayMessage(t)!).filter((m) => m.o.startsWith("c:"));
    assert.ok(
      fromC.every((m) => !m.p && !m.b),
      "c, which only received, passed nothing on (keepalives only)",
    );
  });
});

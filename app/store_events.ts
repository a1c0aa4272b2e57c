/**
 * @module store_events
 * Feeds the event hub and the presence tracker from the store's writes, wherever they come from
 * (the worker's job handlers, the command intake, the downlink, the TTL sweeper): the store is
 * wrapped once in `gateway.ts`, so no hot path has a line of console code and every method the
 * store gains later passes through untouched. An event is emitted only after its write is stored,
 * and built only while someone listens: here, or with Redis anywhere in the fleet (`hub.active`, see
 * `event_relay.ts`). Presence is fed from heartbeats regardless.
 */
import { type CommandAck, saleKey, type Store } from "../db/store.ts";
import type { EventHub } from "../lib/event_hub.ts";
import type { PresenceTracker } from "../lib/presence.ts";

type Hooks = Partial<Record<keyof Store, unknown>>;

export function observeStore(store: Store, hub: EventHub, presence?: PresenceTracker): Store {
  const iso = (d: Date) => d.toISOString();
  const hooks: Hooks = {
    async recordHeartbeats(rows: Parameters<Store["recordHeartbeats"]>[0]) {
      await store.recordHeartbeats(rows);
      if (presence) { for (const r of rows) presence.heard(r.serialNo, r.receivedAt); }
      if (!hub.active) return;
      for (const r of rows) {
        if (!hub.admits("heartbeat", r.serialNo)) continue; // over the cap: counted, not built
        hub.emit({
          type: "heartbeat",
          serial: r.serialNo,
          at: iso(r.receivedAt),
          temperature: r.temperature,
          page: r.currentPage,
        });
      }
    },
    async recordMachineLogs(rows: Parameters<Store["recordMachineLogs"]>[0]) {
      await store.recordMachineLogs(rows);
      if (!hub.active) return;
      for (const r of rows) {
        if (!hub.admits("error")) continue;
        hub.emit({
          type: "error",
          serial: r.serialNo,
          code: r.code,
          level: r.level,
          message: r.message.slice(0, 500),
          at: iso(r.receivedAt),
        });
      }
    },
    async recordTransactions(rows: Parameters<Store["recordTransactions"]>[0]) {
      const outcome = await store.recordTransactions(rows);
      if (hub.active && outcome.applied.length > 0) {
        // Every sale applied when the batch applied all (the usual case): no keys to compare then.
        const applied = outcome.applied.length === rows.length ? null : new Set(outcome.applied.map(saleKey));
        for (const r of rows) {
          if (applied && !applied.has(saleKey(r))) continue;
          if (!hub.admits("sale")) continue;
          hub.emit({
            type: "sale",
            serial: r.serialNo,
            slot: r.slotNo,
            quantity: r.quantity,
            amount: r.amount,
            at: iso(r.receivedAt),
          });
        }
      }
      return outcome;
    },
    async createCommand(command: Parameters<Store["createCommand"]>[0]) {
      const result = await store.createCommand(command);
      if (result.created) {
        hub.emit({
          type: "command",
          status: "queued",
          ids: [command.messageId],
          serials: [command.serialNo],
        });
      }
      return result;
    },
    async createCommands(...args: Parameters<Store["createCommands"]>) {
      const results = await store.createCommands(...args);
      if (hub.active) {
        const created = results.filter((r) => r.created).map((r) => r.command);
        if (created.length > 0) {
          hub.emit({
            type: "command",
            status: "queued",
            ids: created.map((c) => c.messageId),
            serials: [...new Set(created.map((c) => c.serialNo))],
          });
        }
      }
      return results;
    },
    async markCommandsSent(ids: readonly string[], at: Date) {
      await store.markCommandsSent(ids, at);
      if (hub.active && ids.length > 0) {
        hub.emit({ type: "command", status: "sent", ids: [...ids], serials: [] });
      }
    },
    async finishQueuedCommand(...args: Parameters<Store["finishQueuedCommand"]>) {
      const changed = await store.finishQueuedCommand(...args);
      if (changed) hub.emit({ type: "command", status: args[1], ids: [args[0]], serials: [] });
      return changed;
    },
    async expireCommands(at: Date) {
      const n = await store.expireCommands(at);
      if (n > 0) hub.emit({ type: "command", status: "expired", ids: [], serials: [] });
      return n;
    },
    async recordCommandAcks(acks: readonly CommandAck[]) {
      const outcomes = await store.recordCommandAcks(acks);
      if (hub.active) {
        acks.forEach((ack, i) => {
          if (outcomes[i] !== "applied") return;
          hub.emit({ type: "command", status: ack.status, ids: [ack.messageId], serials: [ack.serialNo] });
        });
      }
      return outcomes;
    },
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      if (prop in hooks) return hooks[prop as keyof Store];
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      // The store's private fields need the store itself as `this`.
      let fn = bound.get(prop);
      if (!fn) bound.set(prop, fn = value.bind(target));
      return fn;
    },
  });
}

/**
 * @module status_view
 * What `GET /mqtt/status` shows (seed 000): the broker connection, roles, backends, counters and
 * queue depths of the running gateway. Reading it also refreshes the queue-depth gauges.
 */
import type { EmbeddedBroker } from "../broker/embedded_broker.ts";
import type { Store } from "../db/store.ts";
import type { DeviceService } from "../devices/device_service.ts";
import { counterValues, type Metrics } from "../lib/metrics.ts";
import type { MqttConnection } from "../mqtt/mqtt_connection.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import type { EventRelay } from "./event_relay.ts";

export interface StatusParts {
  metrics: Metrics;
  roles: ReadonlySet<string>;
  queues: ReliableQueue[];
  queueKind?: string;
  connection?: MqttConnection;
  embeddedBroker?: EmbeddedBroker;
  store?: Store;
  devices?: DeviceService;
  relay?: EventRelay;
}

export async function statusView(p: StatusParts): Promise<Record<string, unknown>> {
  const m = p.metrics;
  const [received, queued, acked, rejected, dead] = await Promise.all([
    counterValues(m.received, "type"),
    counterValues(m.queued, "type"),
    counterValues(m.acked, "type"),
    counterValues(m.rejected, "reason"),
    counterValues(m.deadLettered),
  ]);
  const depths: Record<string, unknown> = {};
  for (const queue of p.queues) {
    try {
      const depth = await queue.depth();
      depths[queue.name] = depth;
      for (const [state, value] of Object.entries(depth)) {
        m.queueDepth.set({ queue: queue.name, state }, value);
      }
    } catch (error) {
      depths[queue.name] = { error: (error as Error).message };
    }
  }
  const connection = p.connection?.status();
  return {
    connected: connection?.connected ?? false,
    broker: connection?.broker ?? null,
    client_id: connection?.clientId ?? null,
    state: connection?.state ?? "disabled",
    subscriptions: connection?.subscriptions ?? [],
    connection: connection ?? null,
    roles: [...p.roles],
    backends: {
      broker: p.embeddedBroker ? "embedded" : p.connection ? "external" : null,
      queue: p.queueKind ?? null,
      database: p.store?.dialect ?? null,
    },
    counters: {
      received: received.total,
      queued: queued.total,
      acked: acked.total,
      rejected: rejected.total,
      dead_lettered: dead.total,
      received_by_type: received.by,
      rejected_by_reason: rejected.by,
    },
    queues: depths,
    devices: p.devices?.status() ?? null,
    // Live events over Redis: every process's (null: this process's only).
    event_relay: p.relay?.status() ?? null,
    embedded_broker: p.embeddedBroker?.status() ?? null,
  };
}

/**
 * @module event_publisher
 * Publishes the device service's events through the gateway's broker connection, and keeps them
 * while it is down: an edge box loses its uplink, and the checks it makes meanwhile are the ones
 * worth knowing about. The buffer is bounded (`DEVICE_EVENT_BUFFER`): past it the oldest event is
 * dropped and counted (`gateway_devices_events_dropped_total`). On every reconnect the buffer is
 * handed to the connection in order, before anything published after it.
 *
 * Events handed over while connected are the connection's from then on: mqtt.js keeps unacknowledged
 * QoS 1 messages across a reconnect (the gateway's `MqttConnection` keeps its stores).
 */
import { getLogger } from "@logtape/logtape";
import type { Metrics } from "../lib/metrics.ts";
import type { DeviceConnection } from "./device_connection.ts";

const log = getLogger(["gateway", "devices", "publisher"]);

export interface EventPublisherOptions {
  connection: DeviceConnection;
  /** How many events to keep while disconnected; 0 keeps none. */
  capacity: number;
  qos?: 0 | 1 | 2;
  metrics?: Metrics;
}

/** `sent`: handed to the connection now; `buffered`: kept until the next connect. */
export type PublishOutcome = "sent" | "buffered";

export interface PublisherStats {
  connected: boolean;
  buffered: number;
  capacity: number;
  dropped: number;
  /** Acknowledged by the broker. */
  published: number;
  /** Handed to the connection and not yet acknowledged. */
  in_flight: number;
  /** Refused by the broker while connected (not retried). */
  failed: number;
  /** Handed over, then given back by a connection that dropped, and buffered again. */
  requeued: number;
}

interface Entry {
  seq: number;
  topic: string;
  payload: string;
}

export class EventPublisher {
  readonly #connection: DeviceConnection;
  readonly #capacity: number;
  readonly #qos: 0 | 1 | 2;
  readonly #metrics?: Metrics;
  readonly #buffer: Entry[] = [];
  readonly #offConnect: () => void;
  #dropped = 0;
  #published = 0;
  #inFlight = 0;
  #failed = 0;
  #requeued = 0;
  #closed = false;
  #seq = 0;

  constructor(options: EventPublisherOptions) {
    this.#connection = options.connection;
    this.#capacity = Math.max(0, Math.floor(options.capacity));
    this.#qos = options.qos ?? 1;
    this.#metrics = options.metrics;
    this.#offConnect = this.#connection.onConnect(() => this.flush());
  }

  /** Publishes `payload` as JSON on `topic` now, or keeps it for the next connect. */
  publish(topic: string, payload: unknown): PublishOutcome {
    if (this.#closed) throw new Error(`Cannot publish on ${topic}: the device event publisher is closed`);
    const entry = { seq: this.#seq++, topic, payload: JSON.stringify(payload) };
    if (this.#connection.connected) {
      // Anything still kept goes first, so events leave in the order they were made. (mqtt.js says
      // connected before it has resent its own stored messages and emitted "connect".)
      this.flush();
      this.#send(entry);
      return "sent";
    }
    this.#keep(entry);
    return "buffered";
  }

  /** Hands every buffered event to the connection, oldest first, while it is connected. */
  flush(): number {
    let sent = 0;
    while (!this.#closed && this.#connection.connected && this.#buffer.length > 0) {
      this.#send(this.#buffer.shift()!);
      sent++;
    }
    if (sent > 0) log.info("Sent {sent} device events kept while disconnected", { sent });
    return sent;
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  get dropped(): number {
    return this.#dropped;
  }

  stats(): PublisherStats {
    return {
      connected: this.#connection.connected,
      buffered: this.#buffer.length,
      capacity: this.#capacity,
      dropped: this.#dropped,
      published: this.#published,
      in_flight: this.#inFlight,
      failed: this.#failed,
      requeued: this.#requeued,
    };
  }

  /** Idempotent. Events still buffered are lost (and logged as such). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#offConnect();
    if (this.#buffer.length > 0) {
      log.warn("Closing with {count} device events never sent", { count: this.#buffer.length });
      this.#buffer.length = 0;
    }
  }

  /** Buffers `entry` in order of making (an event given back by a lost connection goes back in its place). */
  #keep(entry: Entry): void {
    let i = this.#buffer.length;
    while (i > 0 && this.#buffer[i - 1]!.seq > entry.seq) i--;
    this.#buffer.splice(i, 0, entry);
    while (this.#buffer.length > this.#capacity) {
      // Drop the oldest: the newest events say the most about the proxies now.
      const lost = this.#buffer.shift()!;
      this.#dropped++;
      this.#metrics?.devicesEventsDropped.inc();
      log.debug("Device event buffer full: dropped an event on {topic}", { topic: lost.topic });
    }
  }

  #send(entry: Entry): void {
    this.#inFlight++;
    this.#connection.publish(entry.topic, entry.payload, { qos: this.#qos }).then(() => {
      this.#inFlight--;
      this.#published++;
    }, (error) => {
      this.#inFlight--;
      if (this.#closed) return;
      if (!this.#connection.connected) {
        // Lost with the connection before the broker had it: keep it for the next connect.
        this.#requeued++;
        log.debug("Publishing on {topic} failed with the connection ({error}): kept", {
          topic: entry.topic,
          error,
        });
        this.#keep(entry);
        return;
      }
      this.#failed++;
      log.error("Cannot publish a device event on {topic}: {error}", { topic: entry.topic, error });
    });
  }
}

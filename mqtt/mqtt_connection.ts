/**
 * @module mqtt_connection
 * One mqtt.js client with what the gateway needs around it: a persistent session, reconnects with
 * exponential backoff and jitter (mqtt.js alone retries at a fixed period), resubscription when the
 * broker lost the session, connection state for `/mqtt/status`, and QoS 1/2 acks held back by a
 * handler until it says so, so PUBACK follows the work it confirms.
 *
 * QoS 1 PUBACKs are pipelined: the next message is handed to its handler while earlier ones are
 * still being stored, and the PUBACKs go out in the order the PUBLISHes arrived once their
 * handlers said so ({@link PubackWindow}; at most `ackWindow` wait per connection). Without this,
 * mqtt.js reads nothing more until the current PUBACK is sent, and one connection is bound to one
 * message per storage round trip. QoS 2 stays one at a time (nothing here uses it).
 */
import { getLogger } from "@logtape/logtape";
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { Metrics } from "../lib/metrics.ts";
import { backoffDelay } from "../lib/backoff_delay.ts";
import { HOLD_PUBACK, sendPubacks } from "./mqtt_puback.ts";
import { PubackWindow } from "./puback_window.ts";

const log = getLogger(["gateway", "mqtt"]);

export interface MqttConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  keepalive: number;
  protocolVersion: 4 | 5;
  /** false keeps the session (and its queued QoS 1 messages) while the gateway is away. */
  clean: boolean;
  sessionExpiry: number;
  reconnectDelayMs: number;
  reconnectMaxDelayMs: number;
  /** A name for logs and metrics ("gateway", "devices", …). */
  name?: string;
  connectTimeoutMs?: number;
  /** QoS 1 messages that may wait for their PUBACK per connection (default {@link DEFAULT_ACK_WINDOW}). */
  ackWindow?: number;
}

/**
 * Enough to cover a Redis round trip at the broker's full rate (20k msg/s × 1 ms = 20). Measured
 * with `deno task bench --only uplink-queue`: 32 and 100 gave the same rate as 1000 with about a
 * fifth less gateway CPU per message (fewer messages alive through each young-generation GC) and
 * less memory.
 */
export const DEFAULT_ACK_WINDOW = 128;

/**
 * Called for each QoS 1/2 message whose topic `matches`, in arrival order; call `done()` once its
 * work is done. QoS 1 PUBACKs are sent in arrival order, so one waits for every earlier `done()`.
 */
export type AckHandler = (
  topic: string,
  payload: Uint8Array,
  packet: IPublishPacket,
  done: () => void,
) => void;
export type MessageListener = (topic: string, payload: Uint8Array, packet: IPublishPacket) => void;

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

export interface ConnectionStatus {
  name: string;
  state: ConnectionState;
  connected: boolean;
  broker: string;
  clientId: string;
  protocolVersion: number;
  subscriptions: string[];
  /** True once the broker has granted every subscription on the current connection. */
  subscribed: boolean;
  connectedAt: string | null;
  disconnectedAt: string | null;
  reconnects: number;
  lastError: string | null;
}

export class MqttConnection {
  readonly client: MqttClient;
  readonly #options: MqttConnectionOptions;
  readonly #metrics?: Metrics;
  readonly #subscriptions = new Map<string, 0 | 1 | 2>();
  readonly #ackHandlers: { matches: (topic: string) => boolean; handler: AckHandler }[] = [];
  readonly #listeners = new Set<MessageListener>();
  #state: ConnectionState = "connecting";
  #connectedAt: Date | null = null;
  #disconnectedAt: Date | null = null;
  #reconnects = 0;
  #failures = 0;
  #lastError: string | null = null;
  #reconnectTimer?: ReturnType<typeof setTimeout>;
  #subscribed = false;
  #closing?: Promise<void>;
  #window?: PubackWindow;
  #windowStream?: unknown;
  /** performance.now() of the last message the broker delivered (any QoS). */
  #lastArrival = 0;
  /** Starts as configured; 5 falls back to 4 when the broker refuses MQTT 5 (aedes, mosquitto 1.x). */
  #protocolVersion: 4 | 5;
  /** The next reconnect is the 3.1.1 retry: at once, not after the backoff. */
  #fallback = false;

  constructor(options: MqttConnectionOptions, metrics?: Metrics) {
    this.#options = options;
    this.#metrics = metrics;
    this.#protocolVersion = options.protocolVersion;
    const clientOptions: IClientOptions = {
      clientId: options.clientId,
      username: options.username || undefined,
      password: options.password || undefined,
      keepalive: options.keepalive,
      protocolVersion: options.protocolVersion,
      clean: options.clean,
      // Reconnects are ours (with backoff); mqtt.js would retry at a fixed period.
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      // mqtt.js logs each packet through `debug`, whose calls build their argument lists even when
      // disabled: a measurable share of the allocations at 1,000 commands/s. Our own log says enough.
      log: () => {},
      // mqtt-packet's number cache is 65,536 two-byte Buffers made at the first packet: 6.5 MB of
      // live heap for life (a fifth of an idle gateway's), and V8 lets the heap grow 2.5x its live
      // data under load. Without it each packet allocates its few length and id bytes.
      writeCache: false,
      // MQTT 5 only: holds a QoS 2 message's PUBREC. QoS 1 goes on to handleMessage (below) at once.
      customHandleAcks: (topic, message, packet, done) => {
        if (packet.qos === 2) this.#onAckable(topic, message, packet, done);
        else done(0);
      },
      properties: options.protocolVersion === 5
        ? { sessionExpiryInterval: options.sessionExpiry }
        : undefined,
    };
    this.client = mqtt.connect(options.url, clientOptions);
    // mqtt.js sends a QoS 1 PUBACK when handleMessage's callback runs (MQTT 5 and 3.1.1 alike).
    this.client.handleMessage = (packet, callback) => {
      if (packet.qos === 1) return this.#onQos1(packet, callback);
      // mqtt.js calls customHandleAcks on MQTT 5 only; on 3.1.1 a QoS 2 message's PUBCOMP waits
      // for handleMessage's callback instead, so the same handlers hold it back there.
      if (packet.qos === 2 && this.#protocolVersion !== 5) {
        return this.#onAckable(packet.topic, packet.payload as Uint8Array, packet, () => callback());
      }
      callback();
    };
    this.#metrics?.brokerConnected.set({ client: this.name }, 0);
    this.client.on("connect", (connack) => {
      // Nagle's algorithm is on for node:net sockets: a small packet (a PUBACK, a command) then
      // waits for the broker's delayed TCP ACK, 40 ms, whenever one is still unacknowledged.
      // Commands went out 40-60 ms late while machines' acks flowed in. Each connect has a new stream.
      (this.client.stream as { setNoDelay?: (noDelay: boolean) => unknown }).setNoDelay?.(true);
      const first = this.#connectedAt === null && this.#reconnects === 0;
      this.#state = "connected";
      this.#connectedAt = new Date();
      this.#failures = 0;
      this.#lastError = null;
      this.#metrics?.brokerConnected.set({ client: this.name }, 1);
      log.info("MQTT {name} connected to {broker} (session present: {sessionPresent})", {
        name: this.name,
        broker: this.broker,
        sessionPresent: connack.sessionPresent,
      });
      // Subscribe again even when the broker says it kept the session: mosquitto 2.0 restores a
      // persisted session after a restart without its shared subscriptions, so trusting
      // sessionPresent leaves the gateway connected and deaf. An identical SUBSCRIBE replaces the
      // subscription without interrupting its flow.
      this.#subscribeAll(!first);
    });
    this.client.on("message", (topic, payload, packet) => {
      this.#lastArrival = performance.now();
      for (const listener of this.#listeners) {
        try {
          listener(topic, payload, packet);
        } catch (error) {
          log.error("A listener for {topic} failed: {error}", { topic, error });
        }
      }
    });
    this.client.on("error", (error) => {
      this.#lastError = error.message;
      if (this.#refusedVersion(error)) return;
      log.warn("MQTT {name}: {message}", { name: this.name, message: error.message });
    });
    this.client.on("close", () => this.#onClose());
  }

  get name(): string {
    return this.#options.name ?? "gateway";
  }

  get broker(): string {
    const u = new URL(this.#options.url);
    return `${u.protocol}//${u.host}`;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  status(): ConnectionStatus {
    return {
      name: this.name,
      state: this.#state,
      connected: this.client.connected,
      broker: this.broker,
      clientId: this.#options.clientId,
      protocolVersion: this.#protocolVersion,
      subscriptions: [...this.#subscriptions.keys()],
      subscribed: this.#subscribed,
      connectedAt: this.#connectedAt?.toISOString() ?? null,
      disconnectedAt: this.#disconnectedAt?.toISOString() ?? null,
      reconnects: this.#reconnects,
      lastError: this.#lastError,
    };
  }

  /** Resolves once connected (or rejects when `signal` aborts / the connection is closed). */
  waitConnected(signal?: AbortSignal): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.client.off("connect", onConnect);
        signal?.removeEventListener("abort", onAbort);
      };
      const onConnect = () => {
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(signal?.reason ?? new Error("aborted"));
      };
      this.client.on("connect", onConnect);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Holds the PUBACK of QoS 1/2 messages on topics that `matches` until the handler calls `done`. */
  handleAcks(matches: (topic: string) => boolean, handler: AckHandler): void {
    this.#ackHandlers.push({ matches, handler });
  }

  /**
   * Every message as it arrives (QoS 1 before its PUBACK, QoS 2 once its handler is done).
   * Returns a function that removes it.
   */
  onMessage(listener: MessageListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Every (re)connection, after the connection's own resubscribing has begun. Returns a remover. */
  onConnect(listener: () => void): () => void {
    const run = () => {
      try {
        listener();
      } catch (error) {
        log.error("A connect listener of MQTT {name} failed: {error}", { name: this.name, error });
      }
    };
    this.client.on("connect", run);
    return () => void this.client.off("connect", run);
  }

  /** Subscribes now if connected, and again whenever the broker has lost the session. */
  async subscribe(filters: readonly string[], qos: 0 | 1 | 2 = 1): Promise<void> {
    for (const f of filters) this.#subscriptions.set(f, qos);
    if (!this.client.connected) return;
    this.#subscribed = false;
    const granted = await this.client.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos }])));
    this.#subscribed = this.#checkGranted(granted);
  }

  /**
   * Unsubscribes `filters` (and forgets them, so a reconnect does not subscribe them again): the
   * broker routes no new message of theirs to this session. What it had already queued for the
   * session still arrives; see {@link settled}.
   */
  async leave(filters: readonly string[]): Promise<void> {
    for (const f of filters) this.#subscriptions.delete(f);
    if (this.client.connected && filters.length > 0) await this.client.unsubscribeAsync([...filters]);
  }

  /** True when no message has arrived for `quietMs` and every one received has its PUBACK out. */
  settled(quietMs: number): boolean {
    return this.client.connected && (this.#window?.size ?? 0) === 0 &&
      performance.now() - this.#lastArrival >= quietMs;
  }

  /**
   * Resolves once the broker acknowledged it (QoS 1: PUBACK). `expirySeconds` (MQTT 5 only; ignored
   * on 3.1.1) lets the broker drop the message if it cannot deliver it in time.
   */
  async publish(
    topic: string,
    payload: string | Uint8Array,
    options: { qos?: 0 | 1 | 2; retain?: boolean; expirySeconds?: number } = {},
  ): Promise<void> {
    const expiry = options.expirySeconds;
    await this.client.publishAsync(topic, payload as string, {
      qos: options.qos ?? 1,
      retain: options.retain,
      properties: this.#protocolVersion === 5 && expiry !== undefined
        ? { messageExpiryInterval: Math.max(1, Math.ceil(expiry)) }
        : undefined,
    });
  }

  /**
   * Idempotent. Without `force`, sends DISCONNECT; unacknowledged messages stay with the broker.
   * `endSession`: the broker drops the session instead of keeping it for `sessionExpiry` (MQTT 5:
   * DISCONNECT with session expiry 0; 3.1.1: one more connect with a clean session), so that
   * nothing is routed to it any more and nothing waits in it (see `app/gateway.ts` `drain`).
   */
  close(force = false, { endSession = false } = {}): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = "closed";
      this.#dropWindow();
      clearTimeout(this.#reconnectTimer);
      this.#listeners.clear();
      this.#metrics?.brokerConnected.set({ client: this.name }, 0);
      const v5 = this.#protocolVersion === 5;
      const disconnect = endSession && v5 && this.client.connected
        ? { properties: { sessionExpiryInterval: 0 } }
        : {};
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.client.end(true, () => resolve()), force ? 0 : 2000);
        this.client.end(force, disconnect, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (endSession && !v5) await this.#cleanSessionOnce();
      if (endSession) log.info("MQTT {name} ended its session", { name: this.name });
    })();
    return this.#closing;
  }

  /** MQTT 3.1.1 has no session expiry: a connect with a clean session makes the broker drop it. */
  async #cleanSessionOnce(): Promise<void> {
    const o = this.#options;
    const client = mqtt.connect(o.url, {
      clientId: o.clientId,
      username: o.username || undefined,
      password: o.password || undefined,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      log: () => {},
      writeCache: false,
    });
    client.on("error", () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
        client.once("close", () => reject(new Error("closed before CONNACK")));
      });
    } catch (error) {
      log.warn("MQTT {name} cannot end its session: {error}", { name: this.name, error });
    } finally {
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    }
  }

  #onAckable(topic: string, payload: Uint8Array, packet: IPublishPacket, done: (code: number) => void): void {
    const entry = this.#ackHandlers.find((h) => h.matches(topic));
    if (!entry) return done(0);
    let called = false;
    entry.handler(topic, payload, packet, () => {
      if (called || this.#state === "closed") return;
      called = true;
      done(0);
    });
  }

  /**
   * Hands the message to its handler and lets mqtt.js read on at once (while the window has room);
   * its PUBACK is sent by the window, after those of every earlier message of this connection.
   */
  #onQos1(packet: IPublishPacket, callback: (error?: Error) => void): void {
    this.#lastArrival = performance.now();
    // Parsed before the connection was lost or closed: no PUBACK can follow, so the handler is
    // not asked to do work the broker will deliver again anyway.
    if (this.#state === "closed" || !this.client.connected) return callback(HOLD_PUBACK);
    const window = this.#windowFor(this.client.stream);
    const settle = window.add(packet.messageId!, () => callback(HOLD_PUBACK));
    const entry = this.#ackHandlers.find((h) => h.matches(packet.topic));
    if (!entry) return settle();
    entry.handler(packet.topic, packet.payload as Uint8Array, packet, () => {
      if (this.#state !== "closed") settle();
    });
  }

  /** One window per network connection: PUBACKs never cross to a later connection. */
  #windowFor(stream: unknown): PubackWindow {
    if (this.#window && this.#windowStream === stream && !this.#window.closed) return this.#window;
    this.#dropWindow();
    const window = new PubackWindow(this.#options.ackWindow ?? DEFAULT_ACK_WINDOW, (ids) => {
      if (this.#state === "closed") return;
      try {
        if (!sendPubacks(this.client, stream, ids)) window.close();
      } catch (error) {
        log.error("MQTT {name} cannot send PUBACKs: {error}", { name: this.name, error });
      }
    });
    this.#window = window;
    this.#windowStream = stream;
    return window;
  }

  #dropWindow(): void {
    this.#window?.close();
    this.#window = undefined;
    this.#windowStream = undefined;
  }

  #subscribeAll(again: boolean): void {
    this.#subscribed = this.#subscriptions.size === 0;
    if (this.#subscriptions.size === 0) return;
    // MQTT 5 rh=1: retained messages only for a subscription the broker did not have any more.
    const rh = again && this.#protocolVersion === 5 ? { rh: 1 } : {};
    const topics = Object.fromEntries([...this.#subscriptions].map(([f, qos]) => [f, { qos, ...rh }]));
    this.client.subscribeAsync(topics).then((granted) => {
      this.#subscribed = this.#checkGranted(granted);
      if (again) {
        log.info("MQTT {name} resubscribed to {count} topics", { name: this.name, count: granted.length });
      }
    }).catch((error) => {
      this.#lastError = error.message;
      log.error("MQTT {name} cannot subscribe: {error}", { name: this.name, error });
    });
  }

  #checkGranted(granted: { topic: string; qos: number }[]): boolean {
    let ok = true;
    for (const g of granted) {
      if (g.qos >= 128) {
        ok = false;
        this.#lastError = `subscription to ${g.topic} refused by the broker`;
        log.error("MQTT {name}: the broker refused the subscription to {topic}", {
          name: this.name,
          topic: g.topic,
        });
      }
    }
    return ok;
  }

  /**
   * A broker that speaks only MQTT 3.1.1 answers an MQTT 5 CONNECT with return code 1 ("unacceptable
   * protocol version"; 0x84 from one that parsed it as 5): the next connect, at once, is 3.1.1.
   * Session expiry and message expiry are MQTT 5 only; the session is kept with `clean: false`.
   */
  #refusedVersion(error: Error): boolean {
    const code = (error as { code?: unknown }).code;
    if (this.#protocolVersion !== 5 || (code !== 1 && code !== 0x84)) return false;
    this.#protocolVersion = 4;
    const options = this.client.options as IClientOptions;
    options.protocolVersion = 4;
    options.properties = undefined;
    this.#failures = 0;
    this.#fallback = true;
    log.info("MQTT {name}: {broker} refused MQTT 5; connecting with MQTT 3.1.1", {
      name: this.name,
      broker: this.broker,
    });
    return true;
  }

  #onClose(): void {
    this.#dropWindow();
    if (this.#state === "closed") return;
    if (this.#state === "connected") {
      this.#disconnectedAt = new Date();
      log.warn("MQTT {name} disconnected from {broker}", { name: this.name, broker: this.broker });
    }
    this.#state = "reconnecting";
    this.#subscribed = false;
    this.#metrics?.brokerConnected.set({ client: this.name }, 0);
    if (this.#reconnectTimer !== undefined) return;
    this.#failures++;
    const delay = this.#fallback ? 0 : backoffDelay(
      this.#failures,
      this.#options.reconnectDelayMs,
      this.#options.reconnectMaxDelayMs,
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#fallback = false;
      if (this.#state === "closed") return;
      this.#reconnects++;
      // Keep the stores: QoS 1 messages not yet acknowledged by the broker are sent again.
      this.client.reconnect({
        incomingStore: this.client.incomingStore,
        outgoingStore: this.client.outgoingStore,
      });
    }, delay);
  }
}

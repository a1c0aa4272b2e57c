/**
 * @module embedded_broker
 * An in-process MQTT 3.1.1 broker (aedes) on `MQTT_LISTEN_HOST:MQTT_LISTEN_PORT`, the default when
 * no external broker is configured. It enforces the same policy as the EMQX hooks, by asking the
 * same {@link BrokerAuth}:
 *
 * - CONNECT: the `gateway` identity is a superuser and may do anything; anyone else is asked to
 *   `authenticate(username, password, clientId)`, refused with return code 4 (bad username or
 *   password) when it says no (a superuser there may do anything too).
 * - Other clients publish and subscribe only where `authorize(username, action, topic)` allows.
 *   A denied SUBSCRIBE gets return code 0x80 for that filter. A denied PUBLISH is acknowledged and
 *   dropped, like EMQX's default `deny_action = ignore`: a misconfigured machine loses that message
 *   but is not thrown into a disconnect / resend loop. `$SYS/…` is never publishable.
 * - Anonymous clients (no username), only with `allowAnonymous` (`MQTT_ALLOW_ANONYMOUS=true`, for
 *   demos): each acts as the machine its topic names, so it may publish to any machine's uplink
 *   topics (`machine/{serial}/heartbeat|error|transaction|command/ack`, serial valid) and
 *   subscribe to one machine's exact `machine/{serial}/command` (no wildcards). It can never
 *   publish a command, nor read all machines' commands. Without the option it is refused (code 5).
 * - Client ids in `reservedClientIds` (the gateway's own) and ids a superuser has used are refused
 *   (code 2) to everyone else, so nobody can take over the gateway's session.
 * - Until {@link EmbeddedBroker.admit} is called only superusers may connect; others are told
 *   "server unavailable" (code 3) and retry. The gateway admits machines once its subscriptions
 *   are in place, so nothing a machine publishes at start-up falls on no subscriber.
 *
 * Machines' publishes wait in the broker's memory until they reach the gateway: at most about
 * `maxInflight` (default 1000) at a time. From there on, machines' connections are not read
 * ({@link PublishGate}) until the gateway has taken half of them; the machines' messages wait in
 * the socket buffers and their own in-flight windows meanwhile. The gateway's connection is never
 * held back.
 *
 * A client (other than a superuser) whose packet header announces more than `maxPacketBytes` is
 * disconnected before the packet is buffered; any smaller publish is acknowledged as soon as it is
 * read, however many socket reads it takes. {@link EmbeddedBroker.closeSessions} ends a machine's
 * sessions when its token is revoked or rotated.
 *
 * Sessions and in-flight QoS 1 messages live in memory: a message a machine had acknowledged by the
 * broker but the gateway had not yet stored in the queue is lost if the process dies in those
 * milliseconds. An external broker with persistence (EMQX) does not have this window.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { getLogger } from "@logtape/logtape";
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from "aedes";
import type { BrokerAuth, MqttAction } from "../auth/broker_auth.ts";
import type { SessionCloser } from "../auth/machine_sessions.ts";
import { PublishGate } from "./publish_gate.ts";
import { parseUplinkTopic } from "../contract/topics.ts";

const log = getLogger(["gateway", "broker"]);

const COMMAND_TOPIC = /^machine\/([A-Za-z0-9_-]{1,64})\/command$/;

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 picks a free port; read it back from {@link EmbeddedBroker.port}. */
  port: number;
  auth: BrokerAuth;
  /**
   * The gateway's own identity, accepted as superuser before `auth` is asked: the gateway may run
   * with an internal random password that no policy knows (see app/gateway.ts).
   */
  gateway?: { username: string; password: string };
  /** Lets clients without a username in, as demo machines (see the module comment). */
  allowAnonymous: boolean;
  /** Client ids that only a superuser may use (the gateway's). */
  reservedClientIds?: readonly string[];
  /** False admits every authenticated client at once (tests); default true: wait for `admit()`. */
  gated?: boolean;
  /**
   * Machines' publishes held in the broker (read, not yet handed to every subscriber) at which
   * machines' connections stop being read until half of them are through; default 1000, 0: no limit.
   */
  maxInflight?: number;
  /**
   * The largest MQTT packet a client other than a superuser may send; a client that announces a
   * larger one is disconnected before its bytes are buffered (MQTT 3.1.1 has no reason code for
   * it). Default {@link DEFAULT_MAX_PACKET_BYTES}.
   */
  maxPacketBytes?: number;
  /**
   * A machine (an authenticated, non-superuser client; its username is its serial) connected or
   * went away: the presence the console and `GET /api/v1/machines` show. Called once per change,
   * however many connections a serial has at once (a takeover is no disconnect).
   */
  onPresence?: (serial: string, connected: boolean) => void;
}

/** The aedes internals the publish gate hooks into (aedes 1.2: `lib/client.js`). */
interface ReadingClient {
  /** Reads the connection's next packets once every packet read so far is handled. */
  _nextBatch?: (error?: Error) => void;
  /** Packets read and not yet handled (0: aedes waits for 'readable'). */
  _parsingBatch?: number;
  /** mqtt-packet's parser: the packet being read, its length known once its header is. */
  _parser?: { packet?: { length?: number } };
  closed?: boolean;
}

const DEFAULT_MAX_INFLIGHT = 1000;
/** 1 MiB: far above any message of the contract; the gateway passes more for larger settings. */
export const DEFAULT_MAX_PACKET_BYTES = 1024 * 1024;

interface Identity {
  username: string;
  superuser: boolean;
  anonymous: boolean;
}

export interface EmbeddedBrokerStatus {
  listening: boolean;
  host: string;
  port: number;
  admitting: boolean;
  clients: number;
  refused: number;
  dropped: number;
  /** Clients disconnected for announcing a packet over the size limit. */
  oversized: number;
  /** Machines' publishes in the broker now, and the most at once since the start. */
  inflight: number;
  inflight_peak: number;
  /** Reads of machines' connections postponed because `inflight` had reached the limit. */
  reads_postponed: number;
}

function refusal(returnCode: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** Compares secrets in constant time (hashed first, so the length does not show either). */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(digest(a), digest(b)) && a.length === b.length;
}

/** Which topics an anonymous demo client may use: it acts as the machine its topic names. */
export function anonymousMayUse(action: MqttAction, topic: string): boolean {
  if (action === "publish") return !("reason" in parseUplinkTopic(topic));
  return COMMAND_TOPIC.test(topic);
}

export class EmbeddedBroker implements SessionCloser {
  readonly name = "embedded broker";
  readonly #options: EmbeddedBrokerOptions;
  readonly #broker: Aedes;
  readonly #server: Server;
  readonly #identities = new WeakMap<Client, Identity>();
  readonly #reserved: Set<string>;
  /** Open connections per machine serial, for `onPresence`. */
  readonly #machineConnections = new Map<string, number>();
  /** Denied publishes: acknowledged by aedes, then dropped before delivery. */
  readonly #deny = new WeakSet<object>();
  readonly #gate?: PublishGate;
  #admitting: boolean;
  #refused = 0;
  #dropped = 0;
  #oversized = 0;
  readonly #maxPacketBytes: number;
  #port = 0;
  #closing?: Promise<void>;

  /** Starts the broker and listens; rejects if the address cannot be bound. */
  static async start(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const broker = await Aedes.createBroker({
      // Keep a slow or stalled client from blocking deliveries to everyone else.
      drainTimeout: 30_000,
    });
    const embedded = new EmbeddedBroker(options, broker);
    try {
      await embedded.#listen();
    } catch (error) {
      await embedded.close();
      throw new Error(
        `Cannot start the embedded MQTT broker on ${options.host}:${options.port}: ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
    return embedded;
  }

  private constructor(options: EmbeddedBrokerOptions, broker: Aedes) {
    this.#options = options;
    this.#broker = broker;
    this.#admitting = options.gated === false;
    this.#reserved = new Set(options.reservedClientIds ?? []);
    this.#maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    const maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    if (maxInflight > 0) this.#gate = new PublishGate({ high: maxInflight });
    broker.authenticate = (client, username, password, done) => {
      this.#authenticate(client, username, password).then(
        (identity) => {
          this.#identities.set(client, identity);
          done(null, true);
        },
        (error: AuthenticateError) => {
          this.#refused++;
          log.info("Refused MQTT client {clientId} ({username}): {reason}", {
            clientId: client.id,
            username: username ?? "",
            reason: error.message,
          });
          done(error, false);
        },
      );
    };
    broker.authorizePublish = (client, packet, done) => {
      // Called as the packet is read: it counts from here until routed to every subscriber.
      if (client) this.#gate?.enter(packet, client);
      this.#mayUse(client, "publish", packet.topic).then((allowed) => {
        if (!allowed) {
          this.#deny.add(packet);
          this.#dropped++;
          log.warn("Dropped a publish of {clientId} ({username}) to {topic}: not allowed", {
            clientId: client?.id ?? "(will)",
            username: client ? this.#identities.get(client)?.username ?? "" : "",
            topic: packet.topic,
          });
        }
        done(null);
      }, (error) => done(error));
    };
    broker.authorizeSubscribe = (client, subscription, done) => {
      this.#mayUse(client, "subscribe", subscription.topic).then((allowed) => {
        if (!allowed) {
          log.warn("Refused a subscription of {clientId} ({username}) to {topic}", {
            clientId: client.id,
            username: this.#identities.get(client)?.username ?? "",
            topic: subscription.topic,
          });
        }
        done(null, allowed ? subscription : null);
      }, (error) => done(error));
    };
    // aedes PUBACKs (or PUBRECs) an incoming message, then calls publish() to route it: a denied
    // one stops here, after its acknowledgement and before any subscriber or retained store sees it.
    type Done = (error?: Error) => void;
    type Route = (packet: PublishPacket, client: Client | null | Done, done?: Done) => void;
    const route = broker.publish.bind(broker) as unknown as Route;
    const guarded: Route = (packet, client, done) => {
      if (this.#deny.has(packet)) {
        this.#deny.delete(packet);
        this.#gate?.leave(packet);
        return (typeof client === "function" ? client : done)?.();
      }
      const gate = this.#gate;
      if (!gate) return route(packet, client, done);
      if (typeof client === "function") {
        const finish = client;
        return route(packet, (error) => {
          gate.leave(packet);
          finish(error);
        });
      }
      route(packet, client, (error) => {
        gate.leave(packet);
        done?.(error);
      });
    };
    (broker as unknown as { publish: Route }).publish = guarded;
    if (options.onPresence) {
      const onPresence = options.onPresence;
      broker.on("client", (client) => {
        const who = this.#identities.get(client);
        if (!who || who.superuser || who.anonymous) return;
        const n = (this.#machineConnections.get(who.username) ?? 0) + 1;
        this.#machineConnections.set(who.username, n);
        if (n === 1) onPresence(who.username, true);
      });
      broker.on("clientDisconnect", (client) => {
        const who = this.#identities.get(client);
        if (!who || who.superuser || who.anonymous) return;
        const n = (this.#machineConnections.get(who.username) ?? 0) - 1;
        if (n > 0) return void this.#machineConnections.set(who.username, n);
        this.#machineConnections.delete(who.username);
        if (n === 0) onPresence(who.username, false);
      });
    }
    broker.on("clientError", (client, error) => {
      log.debug("MQTT client {clientId}: {message}", { clientId: client.id, message: error.message });
    });
    broker.on("connectionError", (client, error) => {
      log.debug("MQTT connection {clientId}: {message}", { clientId: client.id, message: error.message });
    });
    this.#server = createServer((conn) => this.#accept(conn));
  }

  /** The port it listens on (the one picked when started with port 0). */
  get port(): number {
    return this.#port;
  }

  get host(): string {
    return this.#options.host;
  }

  /** Where a client on this host reaches it (a wildcard listen address becomes loopback). */
  get url(): string {
    const host = this.#options.host === "0.0.0.0" || this.#options.host === "::"
      ? "127.0.0.1"
      : this.#options.host;
    return `mqtt://${host.includes(":") ? `[${host}]` : host}:${this.#port}`;
  }

  /** From now on, authenticated machines may connect (until now: only superusers). */
  admit(): void {
    if (!this.#admitting) log.info("Embedded MQTT broker admits machines");
    this.#admitting = true;
  }

  status(): EmbeddedBrokerStatus {
    return {
      listening: this.#server.listening,
      host: this.#options.host,
      port: this.#port,
      admitting: this.#admitting,
      clients: this.#broker.connectedClients ?? 0,
      refused: this.#refused,
      dropped: this.#dropped,
      oversized: this.#oversized,
      inflight: this.#gate?.size ?? 0,
      inflight_peak: this.#gate?.peak ?? 0,
      reads_postponed: this.#gate?.deferrals ?? 0,
    };
  }

  /**
   * Disconnects every client that connected with this username (a machine's serial_no) now, as
   * after its token is revoked or rotated: it must connect again, with a token that works.
   */
  closeSessions(username: string): Promise<number> {
    const clients = (this.#broker as unknown as { clients: Record<string, Client> }).clients;
    let closed = 0;
    for (const client of Object.values(clients)) {
      const who = this.#identities.get(client);
      if (who && !who.superuser && who.username === username) {
        client.close();
        closed++;
      }
    }
    return Promise.resolve(closed);
  }

  /** Idempotent: stops listening, disconnects every client, and waits for both. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => {
        if (!this.#server.listening) return resolve();
        this.#server.close(() => resolve());
      });
      await new Promise<void>((resolve) => this.#broker.close(() => resolve()));
      await serverClosed;
    })();
    return this.#closing;
  }

  /**
   * Hands a connection to aedes, and puts the machine's reads behind the publish gate: aedes reads
   * a connection's next packets through `_nextBatch`, on 'readable' and when the packets read
   * before are handled. Until it has authenticated, and for superusers (the gateway), it reads as
   * aedes wants.
   *
   * aedes reads once per 'readable' (`conn.read()`, then parses), but Deno's `node:net` can push
   * the socket's next bytes into the stream during that very read: they stay buffered and no
   * 'readable' follows until the client sends more. A publish larger than one socket read (64 KB)
   * then waited for the client's next packet (its PINGREQ, a minute later) before it was parsed
   * and acknowledged. So after each read, bytes left behind while aedes is idle are read too.
   */
  #accept(conn: Socket): void {
    const client = this.#broker.handle(conn) as unknown as Client & ReadingClient;
    const gate = this.#gate;
    const original = client._nextBatch;
    if (typeof original !== "function" || !conn.listeners("readable").includes(original)) {
      log.warn("This aedes reads differently: machines' reads are not held back nor caught up");
      return;
    }
    let catchingUp = false;
    const idleWithBytesLeft = () => !client.closed && client._parsingBatch === 0 && conn.readableLength > 0;
    const read = () => {
      original();
      const declared = client._parser?.packet?.length ?? -1;
      if (declared > this.#maxPacketBytes && !this.#identities.get(client)?.superuser) {
        this.#oversized++;
        log.warn("Disconnected MQTT client {clientId}: a packet of {bytes} bytes exceeds {max}", {
          clientId: client.id ?? "(not connected)",
          bytes: declared,
          max: this.#maxPacketBytes,
        });
        conn.destroy();
        return;
      }
      if (catchingUp || !idleWithBytesLeft()) return;
      catchingUp = true;
      setImmediate(() => {
        catchingUp = false;
        if (idleWithBytesLeft()) next();
      });
    };
    const next = (error?: Error) => {
      if (error) return original(error);
      const who = this.#identities.get(client);
      if (!gate || !who || who.superuser) return read();
      gate.read(client, read);
    };
    conn.removeListener("readable", original);
    conn.on("readable", next);
    client._nextBatch = next;
    if (gate) conn.once("close", () => gate.forget(client));
  }

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => {
        this.#server.off("listening", onListening);
        reject(error);
      };
      const onListening = () => {
        this.#server.off("error", onError);
        const address = this.#server.address();
        this.#port = typeof address === "object" && address ? address.port : this.#options.port;
        this.#server.on("error", (error) => log.error("Embedded MQTT broker: {error}", { error }));
        log.info("Embedded MQTT broker listening on {host}:{port}", {
          host: this.#options.host,
          port: this.#port,
        });
        resolve();
      };
      this.#server.once("error", onError);
      this.#server.once("listening", onListening);
      this.#server.listen(this.#options.port, this.#options.host);
    });
  }

  async #authenticate(client: Client, username?: string, password?: Buffer): Promise<Identity> {
    const clientId = client.id;
    if (!username) {
      if (!this.#options.allowAnonymous) throw refusal(5, "anonymous clients are not allowed");
      if (this.#reserved.has(clientId)) throw refusal(2, `client id ${clientId} is reserved`);
      if (!this.#admitting) throw refusal(3, "the gateway is not ready yet");
      return { username: "", superuser: false, anonymous: true };
    }
    const gateway = this.#options.gateway;
    if (gateway && username === gateway.username) {
      if (!sameSecret(password?.toString("utf8") ?? "", gateway.password)) {
        throw refusal(4, "bad username or password");
      }
      this.#reserved.add(clientId);
      return { username, superuser: true, anonymous: false };
    }
    let result;
    try {
      result = await this.#options.auth.authenticate(username, password?.toString("utf8") ?? "", clientId);
    } catch (error) {
      log.error("Cannot authenticate MQTT client {clientId}: {error}", { clientId, error });
      throw refusal(3, `authentication unavailable: ${(error as Error).message}`);
    }
    if (!result.ok) throw refusal(4, "bad username or password");
    if (result.superuser) {
      this.#reserved.add(clientId);
      return { username, superuser: true, anonymous: false };
    }
    if (this.#reserved.has(clientId)) throw refusal(2, `client id ${clientId} is reserved`);
    if (!this.#admitting) throw refusal(3, "the gateway is not ready yet");
    return { username, superuser: false, anonymous: false };
  }

  async #mayUse(client: Client | null, action: MqttAction, topic: string): Promise<boolean> {
    if (topic.startsWith("$SYS")) return false;
    const who = client ? this.#identities.get(client) : undefined;
    if (!who) return false; // a will published after its client is gone, or an unknown client
    if (who.superuser) return true;
    if (who.anonymous) return anonymousMayUse(action, topic);
    try {
      return await this.#options.auth.authorize(who.username, action, topic);
    } catch (error) {
      log.error("Cannot authorize {username} to {action} {topic}: {error}", {
        username: who.username,
        action,
        topic,
        error,
      });
      return false;
    }
  }
}

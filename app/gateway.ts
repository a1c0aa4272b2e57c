/**
 * @module gateway
 * Builds the whole gateway from a {@link Config}: backends (broker connection, queues, store), the
 * loops of the configured roles, and the HTTP app. `main.ts` and the end-to-end tests both use it.
 * `close()` stops in reverse order of start, is idempotent, and runs every step even if one fails.
 */
import { getLogger } from "@logtape/logtape";
import { Hono } from "hono";
import { randomBytes } from "node:crypto";
import type { BrokerAuth } from "../auth/broker_auth.ts";
import { CommandCenter } from "./command_center.ts";
import type { EmbeddedBroker } from "../broker/embedded_broker.ts";
import { MqttConnection, type MqttConnectionOptions } from "../mqtt/mqtt_connection.ts";
import { PushBatcher } from "../uplink/push_batcher.ts";
import { startUplink } from "../uplink/uplink.ts";
import { uplinkFilters } from "../contract/topics.ts";
import { sleep } from "../lib/sleep.ts";
import { type Config, riskySettings } from "../config.ts";
import { openStore } from "../db/open_store.ts";
import { DeviceService } from "../devices/device_service.ts";
import type { Store } from "../db/store.ts";
import { Alerter } from "../jobs/alerter.ts";
import { commandAckJob } from "../jobs/handlers/command_ack.ts";
import { Dispatcher } from "../jobs/dispatcher.ts";
import { errorJob } from "../jobs/handlers/error.ts";
import { heartbeatJob } from "../jobs/handlers/heartbeat.ts";
import type { JobHandler } from "../jobs/job_handler.ts";
import { transactionJob } from "../jobs/handlers/transaction.ts";
import { runWorker } from "../jobs/worker.ts";
import { createMetrics, type Metrics } from "../lib/metrics.ts";
import { openQueueBackend, type QueueBackend } from "../queue/open_queues.ts";
import { Reclaimer } from "../queue/reclaimer.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import { notFound, onError } from "../http/error_handler.ts";
import { mountRoutes } from "../http/mount_routes.ts";
import { statusView } from "./status_view.ts";
import { observeStore } from "./store_events.ts";
import { EventHub } from "../lib/event_hub.ts";
import { PresenceTracker } from "../lib/presence.ts";
import { EventRelay } from "./event_relay.ts";
import { watchSysPresence } from "../broker/sys_presence.ts";
import { type ConsoleApp, consoleRoutes } from "../http/console/console_routes.tsx";
import { counterValues } from "../lib/metrics.ts";
import { type ServiceCheck, untilAborted, waitForService } from "./service_check.ts";
import { StartupError } from "../lib/errors.ts";

const log = getLogger(["gateway"]);

/** The job types the worker knows; one file each under `jobs/`. */
export const JOB_HANDLERS: readonly JobHandler[] = [heartbeatJob, errorJob, transactionJob, commandAckJob];

type Cleanup = { name: string; run: () => Promise<void> | void };

export class Gateway {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly app: Hono;
  /** Bearer token of `/api/*`: `API_TOKEN`, or a random one made here (main.ts prints it). */
  readonly apiToken: string;
  /**
   * Live events (heartbeats, errors, sales, commands, presence): the console's feed. This process's,
   * and with Redis every process's of the fleet (see {@link relay}).
   */
  readonly hub = new EventHub();
  /** Which machines are online: broker events where it tells, else heartbeat age. */
  readonly presence: PresenceTracker;
  readonly #controller = new AbortController();
  /** Aborted by {@link endStreams}: ends the live event streams of the API and the console. */
  readonly #streams = new AbortController();
  readonly #cleanups: Cleanup[] = [];
  readonly #loops: Promise<void>[] = [];
  #store?: Store;
  #queues?: QueueBackend;
  #incoming?: ReliableQueue;
  #outgoing?: ReliableQueue;
  #connection?: MqttConnection;
  #broker?: EmbeddedBroker;
  #commands?: CommandCenter;
  #devices?: DeviceService;
  #console?: ConsoleApp;
  #relay?: EventRelay;
  #started = false;
  #closing?: Promise<void>;

  constructor(config: Config) {
    this.config = config;
    this.metrics = createMetrics();
    this.apiToken = config.http.apiToken ?? randomBytes(24).toString("base64url");
    this.presence = new PresenceTracker({
      silenceMs: config.machineOnlineSeconds * 1000,
      hub: this.hub,
      // What this process learnt goes to the others (with Redis; see app/event_relay.ts).
      onLocal: (event) => this.#relay?.presence(event),
    });
    this.app = new Hono();
    this.app.onError(onError);
    this.app.notFound(notFound);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get store(): Store | undefined {
    return this.#store;
  }

  get connection(): MqttConnection | undefined {
    return this.#connection;
  }

  /** The in-process broker, when no `MQTT_URL` is set and a role needs a broker. */
  get embeddedBroker(): EmbeddedBroker | undefined {
    return this.#broker;
  }

  /** Who may connect and use which topics (machines by token, the gateway itself): for a broker. */
  get brokerAuth(): BrokerAuth | undefined {
    return this.#commands?.brokerAuth;
  }

  /** The relay of live events and presence between the gateway processes on one Redis, if any. */
  get relay(): EventRelay | undefined {
    return this.#relay;
  }

  /** The device service (role `devices` with proxies configured); register MQTT handlers on it. */
  get devices(): DeviceService | undefined {
    return this.#devices;
  }

  /** Opens the backends the roles need, migrates, mounts routes and starts the loops. */
  async start(): Promise<void> {
    if (this.#started) throw new Error("Gateway already started");
    this.#started = true;
    const { config } = this;
    const roles = config.roles;
    const needsQueue = roles.has("uplink") || roles.has("worker") || roles.has("downlink") ||
      roles.has("api");
    // The device service needs only the broker, so an edge box can run `GATEWAY_ROLES=devices` alone.
    const devicesOn = roles.has("devices") && config.devices.proxies.length > 0;
    const needsBroker = roles.has("uplink") || roles.has("downlink") || devicesOn;
    const embeddedBroker = needsBroker && !config.mqtt.url;
    // The embedded broker checks machine tokens, which live in the store.
    const needsStore = roles.has("worker") || roles.has("api") || roles.has("downlink") || embeddedBroker;

    for (const risk of riskySettings(config)) log.warn("Risky setting: {risk}", { risk });
    try {
      this.#onClose("presence", () => {
        this.presence.close();
        this.hub.close();
      });
      // The services are waited for together, so every one that cannot be used is named at once.
      const waits: Promise<void>[] = [];
      if (needsStore) waits.push(this.#openStore());
      if (needsQueue) waits.push(this.#openQueues());
      // Only whether the broker answers: the gateway's own connection waits until the uplink's
      // handlers are in place (a persistent session delivers its queued messages at CONNACK).
      if (needsBroker && !embeddedBroker) waits.push(this.#probeExternalBroker());
      const failed = (await Promise.allSettled(waits)).filter((r) => r.status === "rejected");
      if (failed.length > 0) {
        const reasons = failed.map((r) => (r as PromiseRejectedResult).reason);
        throw new StartupError(reasons.map((e) => (e as Error).message), { cause: reasons[0] });
      }
      await this.#startPresence();
      // Commands, machine credentials and the HTTP API; built before the broker, whose auth it provides.
      const commands = await CommandCenter.open({
        config,
        apiToken: this.apiToken,
        store: this.#store,
        queues: this.#queues,
        metrics: this.metrics,
        signal: this.signal,
        presence: this.presence,
        events: { hub: this.hub, signal: this.#streams.signal },
      });
      this.#commands = commands;
      const mqttOptions = embeddedBroker
        ? await this.#connectEmbeddedBroker(commands)
        : needsBroker
        ? await this.#openExternalConnection()
        : undefined;
      if (roles.has("worker")) this.#startWorkers();
      if (roles.has("uplink")) await this.#startUplinks(mqttOptions!);
      if (devicesOn) await this.#startDevices();
      if (needsBroker && !embeddedBroker) await this.#connectedToExternalBroker();
      else if (roles.has("devices") && roles.size === 1) {
        log.warn("Role devices has no proxies to check: set DEVICE_PROXIES or DEVICE_PROXIES_FILE");
      }
      // Closed before the broker connection and queues, once its loops have finished.
      this.#onClose("commands", () => commands.close());
      await commands.start(this.#connection);
      // Machines may connect once the uplink subscriptions exist: nothing they send is dropped.
      this.#broker?.admit();
      mountRoutes(this.app, {
        connection: this.#connection,
        queues: this.#queues,
        store: this.#store,
        status: () => this.status(),
        metrics: this.metrics,
        guard: {
          apiToken: this.apiToken,
          maxBodyBytes: this.config.http.maxBodyBytes,
          maxInFlight: this.config.http.maxInFlight,
          bodyTimeoutMs: this.config.http.bodyTimeoutMs,
        },
        api: this.#commands?.api,
        devices: this.#devices,
      });
      if (roles.has("api") && this.#store) this.#mountConsole(commands);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /**
   * The presence sweep and, with Redis, the event relay. With the relay the sweep asks the database
   * before it calls a machine silent (this process hears only its share of the heartbeats), and a
   * process without a database does not sweep: it hears no heartbeats, and the others' changes
   * reach it through the relay.
   */
  async #startPresence(): Promise<void> {
    const { config } = this;
    if (this.#queues?.kind !== "redis" || !config.redis.url) {
      this.presence.start();
      return;
    }
    // Loaded only with Redis, like the queues' client: an edge box never holds ioredis.
    const { RedisEventChannel } = await import("../queue/redis/redis_event_channel.ts");
    const relay = new EventRelay({
      hub: this.hub,
      presence: this.presence,
      channel: new RedisEventChannel(config.redis.url, config.redis.incomingQueue),
      origin: `${config.mqtt.clientId}:${randomBytes(4).toString("hex")}`,
      metrics: this.metrics,
    });
    this.#relay = relay;
    this.#onClose("event relay", () => relay.close());
    const store = this.#store;
    if (store) this.presence.start({ lastHeard: (serials) => store.views.lastHeard(serials) });
    // Redis answered a moment ago (the queues); should it not now, the relay subscribes when it does.
    await relay.start(AbortSignal.any([this.signal, AbortSignal.timeout(5000)])).catch((error) =>
      log.warn("Event relay not subscribed yet ({error}); live events are this process's until it is", {
        error,
      })
    );
  }

  /** The operator console at `/console` (and `/` redirects there): same app, same process. */
  #mountConsole(commands: CommandCenter): void {
    const { config } = this;
    const queues = this.#queues;
    const consoleApp = consoleRoutes({
      apiToken: this.apiToken,
      viewerToken: config.console.viewerToken,
      store: this.#store!,
      hub: this.hub,
      presence: this.presence,
      intake: commands.intake,
      credentials: commands.credentials,
      deadLetters: queues
        ? {
          incoming: queues.queue(config.redis.incomingQueue, `${config.mqtt.clientId}:console`),
          outgoing: queues.queue(config.redis.outgoingQueue, `${config.mqtt.clientId}:console`),
        }
        : {},
      devices: this.#devices,
      status: () => this.status(),
      receivedTotal: async () => (await counterValues(this.metrics.received)).total,
      onlineWindowSeconds: config.machineOnlineSeconds,
      lowStock: config.console.lowStock,
      commandTtlSeconds: config.commandTtlSeconds,
      metrics: this.metrics,
    });
    this.#console = consoleApp;
    this.#onClose("console", () => consoleApp.close());
    this.app.route("/", consoleApp.app);
  }

  /** Ends the console's event streams, so the HTTP server can drain (main.ts, on a signal). */
  endStreams(): void {
    this.#streams.abort();
    this.#console?.close();
  }

  async #openStore(): Promise<void> {
    const { database } = this.config;
    const raw = await openStore(database);
    // Every write also feeds the live events and presence (app/store_events.ts).
    const store = observeStore(raw, this.hub, this.presence);
    this.#store = store;
    this.#onClose("store", () => store.close());
    if (store.dialect === "mysql") {
      await this.#waitFor({
        service: "MySQL",
        variable: "DATABASE_URL",
        url: database.url!,
        attempt: (signal) => untilAborted(store.migrate(), signal),
      });
    } else await store.migrate();
    log.info("Database ready ({dialect})", { dialect: store.dialect });
  }

  async #openQueues(): Promise<void> {
    const { config } = this;
    const queues = await openQueueBackend({
      redisUrl: config.redis.url,
      waitReplicas: config.redis.waitReplicas,
      consumerTtlMs: config.redis.consumerTtlMs,
      dataDir: config.database.dataDir,
    });
    this.#queues = queues;
    // A drained gateway leaves for good: its workers' unfinished leases go back to the list now.
    this.#onClose("queues", () => queues.close({ handBack: this.#drained }));
    const incoming = queues.queue(config.redis.incomingQueue, `${config.mqtt.clientId}:uplink`);
    this.#incoming = incoming;
    // Read on every scrape of /metrics (a handle of its own: depth() only reads).
    const outgoing = queues.queue(config.redis.outgoingQueue, `${config.mqtt.clientId}:metrics`);
    this.#outgoing = outgoing;
    this.metrics.watchQueueDepth(incoming.name, () => incoming.depth());
    this.metrics.watchQueueDepth(outgoing.name, () => outgoing.depth());
    if (queues.kind === "redis") {
      await this.#waitFor({
        service: "Redis",
        variable: "REDIS_URL",
        url: config.redis.url!,
        // ioredis keeps the PING until it is connected: the last connection error says why not.
        attempt: (signal) => untilAborted(queues.ping(), signal),
        lastReason: () => queues.lastError(),
      });
    }
  }

  #waitFor(check: ServiceCheck): Promise<void> {
    return waitForService(check, this.config.startupWaitMs, this.signal);
  }

  #connectionOptions(broker: { url: string; username: string; password: string }): MqttConnectionOptions {
    const { config } = this;
    return {
      url: broker.url,
      clientId: config.mqtt.clientId,
      username: broker.username,
      password: broker.password,
      keepalive: config.mqtt.keepalive,
      // aedes speaks MQTT 3.1.1 only.
      protocolVersion: config.mqtt.url ? config.mqtt.protocolVersion : 4,
      clean: false,
      sessionExpiry: config.mqtt.sessionExpiry,
      reconnectDelayMs: config.mqtt.reconnectDelayMs,
      reconnectMaxDelayMs: config.mqtt.reconnectMaxDelayMs,
    };
  }

  /** Whether something answers at `MQTT_URL`'s host and port (TCP), for the start's service checks. */
  #probeExternalBroker(): Promise<void> {
    const url = new URL(this.config.mqtt.url!);
    const ports: Record<string, number> = {
      "mqtt:": 1883,
      "tcp:": 1883,
      "mqtts:": 8883,
      "ws:": 80,
      "wss:": 443,
    };
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port) || ports[url.protocol] || 1883;
    return this.#waitFor({
      service: "the MQTT broker",
      variable: this.config.mqtt.urlVariable,
      url: url.href,
      attempt: async (signal) => (await Deno.connect({ hostname, port, signal })).close(),
    });
  }

  /** The gateway's connection to `MQTT_URL`; connects in the background (see below). */
  async #openExternalConnection(): Promise<MqttConnectionOptions> {
    const { mqtt: m } = this.config;
    const options = this.#connectionOptions({ url: m.url!, username: m.username, password: m.password });
    const connection = new MqttConnection(options, this.metrics);
    this.#connection = connection;
    this.#onClose("mqtt", () => connection.close(false, { endSession: this.#drained }));
    if (m.presenceEvents) {
      const off = await watchSysPresence(
        connection,
        (e) => this.presence.brokerEvent(e.serial, e.connected, e.at),
        new Set([m.username].filter(Boolean)),
      );
      this.#onClose("presence events", off);
    }
    return options;
  }

  /** Once the handlers are registered: the broker accepted the gateway (or one line says why not). */
  async #connectedToExternalBroker(): Promise<void> {
    const connection = this.#connection!;
    await this.#waitFor({
      service: "the MQTT broker",
      variable: this.config.mqtt.urlVariable,
      credentials: "MQTT_USERNAME and MQTT_PASSWORD",
      url: this.config.mqtt.url!,
      attempt: (signal) => connection.waitConnected(signal),
      lastReason: () => connection.status().lastError,
    }).catch((error) => {
      throw new StartupError([(error as Error).message], { cause: error });
    });
  }

  /** Starts the embedded broker, then the gateway's own connection to it. */
  async #connectEmbeddedBroker(commands: CommandCenter): Promise<MqttConnectionOptions> {
    const broker = await this.#startEmbeddedBroker(commands);
    const mqttOptions = this.#connectionOptions(broker);
    const connection = new MqttConnection(mqttOptions, this.metrics);
    this.#connection = connection;
    this.#onClose("mqtt", () => connection.close(false, { endSession: this.#drained }));
    // Subscribe for real (not just on a later connect) before machines are let in.
    await connection.waitConnected(AbortSignal.any([this.signal, AbortSignal.timeout(10_000)])).catch(
      (error) => {
        throw new Error(`Cannot connect to the embedded MQTT broker at ${broker.url}`, { cause: error });
      },
    );
    return mqttOptions;
  }

  async #startUplinks(mqttOptions: MqttConnectionOptions): Promise<void> {
    const { config } = this;
    // Shared subscriptions need a broker that has them; the embedded one does not.
    const shareGroup = config.mqtt.url ? config.mqtt.shareGroup : "";
    // mqtt.js handles one acknowledged message at a time per connection (its PUBACK waits for
    // the queue push), so more connections in the share group keep more pushes in flight.
    const connections = [this.#connection!];
    const extra = shareGroup ? config.mqtt.uplinkConnections - 1 : 0;
    if (config.mqtt.url && !shareGroup && config.mqtt.uplinkConnections > 1) {
      log.warn("MQTT_UPLINK_CONNECTIONS > 1 needs shared subscriptions (MQTT_SHARE_GROUP); using 1");
    }
    for (let i = 1; i <= extra; i++) {
      const extraConnection = new MqttConnection({
        ...mqttOptions,
        clientId: `${config.mqtt.clientId}-uplink-${i}`,
        name: `uplink-${i}`,
      }, this.metrics);
      this.#onClose(`mqtt uplink-${i}`, () => extraConnection.close(false, { endSession: this.#drained }));
      connections.push(extraConnection);
    }
    this.#uplinkConnections = connections;
    this.#shareGroup = shareGroup;
    const batcher = new PushBatcher(this.#incoming!);
    for (const connection of connections) {
      await startUplink({
        connection,
        queue: this.#incoming!,
        batcher,
        maxPayloadBytes: config.mqtt.maxPayloadBytes,
        shareGroup,
        metrics: this.metrics,
        signal: this.signal,
      });
    }
  }

  async #startDevices(): Promise<void> {
    const { devices: d } = this.config;
    const devices = new DeviceService({
      connection: this.#connection!,
      proxies: d.proxies,
      bufferSize: d.eventBuffer,
      summaryIntervalMs: d.summaryIntervalMs,
      metrics: this.metrics,
    });
    this.#devices = devices;
    this.#onClose("devices", () => devices.close());
    await devices.start();
  }

  /**
   * Starts the in-process broker with the gateway's broker policy. The gateway connects to it as
   * superuser with `MQTT_USERNAME` / `MQTT_PASSWORD`, or an internal identity made here (a username
   * no machine can have, a random password) when they are not set.
   */
  async #startEmbeddedBroker(
    commands: CommandCenter,
  ): Promise<{ url: string; username: string; password: string }> {
    const { mqtt: m } = this.config;
    if (m.protocolVersion === 5) {
      log.warn("The embedded broker speaks MQTT 3.1.1: the gateway connects with it");
    }
    const username = m.username || "$gateway";
    const password = m.password || randomBytes(24).toString("base64url");
    const auth = commands.brokerAuth;
    if (!auth) throw new Error("The embedded broker needs the store to check machine tokens");
    // Loaded only here: a gateway behind EMQX or Mosquitto never holds aedes in its heap.
    const { DEFAULT_MAX_PACKET_BYTES, EmbeddedBroker } = await import("../broker/embedded_broker.ts");
    const broker = await EmbeddedBroker.start({
      host: m.listenHost,
      port: m.listenPort,
      auth,
      gateway: { username, password },
      allowAnonymous: m.allowAnonymous,
      reservedClientIds: [m.clientId],
      // Room for a message of MQTT_MAX_PAYLOAD_BYTES with its topic; larger ones are refused by the
      // uplink anyway, so past this the broker need not buffer them.
      maxPacketBytes: Math.max(DEFAULT_MAX_PACKET_BYTES, m.maxPayloadBytes + 64 * 1024),
      onPresence: (serial, connected) => this.presence.brokerEvent(serial, connected),
    });
    this.#broker = broker;
    this.#onClose("embedded broker", () => broker.close());
    // Revoking or rotating a token (role api, this process) ends the machine's sessions here.
    commands.sessions.add(broker);
    return { url: broker.url, username, password };
  }

  #startWorkers(): void {
    const { config } = this;
    const alerter = new Alerter(config.alertWebhookUrl);
    this.#onClose("alerts", () => alerter.close());
    const dispatcher = new Dispatcher(JOB_HANDLERS);
    for (let i = 0; i < config.worker.concurrency; i++) {
      // Stable consumer ids: after a crash, the same slot finds and puts back its own jobs.
      const queue = this.#queues!.queue(config.redis.incomingQueue, `${config.mqtt.clientId}:worker:${i}`);
      const loop = runWorker({
        queue,
        dispatcher,
        ctx: { store: this.#store!, alert: alerter.alert, metrics: this.metrics },
        store: this.#store!,
        batchSize: config.worker.batchSize,
        maxAttempts: config.worker.maxAttempts,
        retryBaseMs: config.worker.retryBaseMs,
        retryMaxMs: config.worker.retryMaxMs,
        metrics: this.metrics,
        signal: this.signal,
      }).catch((error) => log.fatal("Worker {i} stopped: {error}", { i, error }));
      this.#loops.push(loop);
    }
    // One sweep per process (not per slot): puts back what workers of gateways gone for good had
    // leased. Its handle leases nothing, so it is no consumer itself.
    const sweeper = new Reclaimer(
      this.#queues!.queue(config.redis.incomingQueue, `${config.mqtt.clientId}:sweeper`),
      this.metrics,
    );
    this.#loops.push(
      sweeper.run(config.redis.consumerTtlMs, this.signal)
        .catch((error) =>
          log.fatal("The sweep of {queue} stopped: {error}", { queue: config.redis.incomingQueue, error })
        ),
    );
  }

  /** What `GET /mqtt/status` shows. */
  status(): Promise<Record<string, unknown>> {
    return statusView({
      metrics: this.metrics,
      roles: this.config.roles,
      queues: [this.#incoming, this.#outgoing].filter((q) => q !== undefined),
      queueKind: this.#queues?.kind,
      connection: this.#connection,
      embeddedBroker: this.#broker,
      store: this.#store,
      devices: this.#devices,
      relay: this.#relay,
    });
  }

  /** The connections subscribed to the uplink, and their share group (see {@link drain}). */
  #uplinkConnections: MqttConnection[] = [];
  #shareGroup = "";
  /** Set by a finished {@link drain}: close() then ends the broker sessions. */
  #drained = false;

  /**
   * Scale-in (SIGUSR2, `--drain`, `GATEWAY_DRAIN_ON_STOP`): leaves the share group (UNSUBSCRIBE,
   * so the broker routes this gateway's share to the other members from now on), stores and
   * acknowledges whatever the session still delivers until nothing has arrived for `quietMs`,
   * and marks the sessions to be ended by `close()` (session expiry 0), so nothing is left
   * waiting in a session nobody will resume. Returns false, and keeps the sessions (their
   * messages wait for a gateway with the same client id), when there is no share group, the
   * broker is unreachable or the session does not settle within `timeoutMs`.
   */
  async drain({ quietMs = 1000, timeoutMs = 60_000 } = {}): Promise<boolean> {
    const connections = this.#uplinkConnections;
    if (connections.length === 0) return false;
    if (!this.#shareGroup) {
      log.error(
        "Not draining: without a share group (MQTT_SHARE_GROUP) no other gateway would get the messages",
      );
      return false;
    }
    log.info("Draining: leaving the share group {group}", { group: this.#shareGroup });
    const filters = uplinkFilters(this.#shareGroup);
    try {
      // The session's subscriptions live at the broker: only a connected client can remove them.
      const connected = AbortSignal.any([this.signal, AbortSignal.timeout(timeoutMs)]);
      await Promise.all(connections.map((c) => c.waitConnected(connected)));
      await Promise.all(connections.map((c) => c.leave(filters)));
    } catch (error) {
      log.error("Draining: cannot reach the broker to unsubscribe ({error}); keeping the session", { error });
      return false;
    }
    const deadline = Date.now() + timeoutMs;
    while (!connections.every((c) => c.settled(quietMs))) {
      if (Date.now() > deadline || this.signal.aborted) {
        log.error("Draining: the session did not settle within {seconds} s; keeping it", {
          seconds: timeoutMs / 1000,
        });
        return false;
      }
      await sleep(Math.min(100, quietMs));
    }
    this.#drained = true;
    log.info("Drained: nothing arrived for {ms} ms; the sessions end on close", { ms: quietMs });
    return true;
  }

  #onClose(name: string, run: Cleanup["run"]): void {
    this.#cleanups.push({ name, run });
  }

  /** Stops taking messages, lets the loops finish their batch, then closes in reverse order. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#controller.abort();
      this.endStreams();
      await Promise.allSettled(this.#loops);
      for (const { name, run } of this.#cleanups.reverse()) {
        try {
          await run();
        } catch (error) {
          log.error("Closing {name} failed: {error}", { name, error });
        }
      }
    })();
    return this.#closing;
  }
}

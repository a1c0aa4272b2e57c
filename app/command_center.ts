/**
 * @module command_center
 * Everything of cloud → machine commands and machine access that `app/gateway.ts` starts, in one
 * place: the machine credentials and broker policy ({@link MachineAuth}), the command intake,
 * the downlink consumer and TTL sweeper (role `downlink`), and the HTTP API (role `api`).
 * Its own Redis connection (credentials for EMQX, the downlink lock) fails fast, so a broker
 * hook never waits on a Redis outage: it falls back to the database.
 */
import { getLogger } from "@logtape/logtape";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { BrokerAuth } from "../auth/broker_auth.ts";
import { RedisCredentialCache } from "../auth/credential_cache.ts";
import { MachineAuth } from "../auth/machine_auth.ts";
import { MachineCredentials } from "../auth/machine_credentials.ts";
import { MachineSessions } from "../auth/machine_sessions.ts";
import { EmqxSessions } from "../auth/emqx_sessions.ts";
import type { Config } from "../config.ts";
import type { Store } from "../db/store.ts";
import type { Metrics } from "../lib/metrics.ts";
import type { PresenceTracker } from "../lib/presence.ts";
import type { EventHub } from "../lib/event_hub.ts";
import type { QueueBackend } from "../queue/open_queues.ts";
import type { RedisClient } from "../queue/redis/open_redis.ts";
import { apiRoutes } from "../http/routes/api.ts";
import { CommandHandoff } from "../downlink/command_handoff.ts";
import { CommandIntake } from "../downlink/command_intake.ts";
import { runCommandSweeper } from "../downlink/command_sweeper.ts";
import { runDownlink } from "../downlink/downlink.ts";
import { RedisDownlinkLock } from "../downlink/downlink_lock.ts";
import { Reclaimer } from "../queue/reclaimer.ts";
import type { MqttConnection } from "../mqtt/mqtt_connection.ts";

const log = getLogger(["gateway", "downlink"]);

export interface CommandCenterDeps {
  config: Config;
  apiToken: string;
  store?: Store;
  queues?: QueueBackend;
  metrics: Metrics;
  signal: AbortSignal;
  presence?: PresenceTracker;
  /** The live events `/api/v1/events` streams, and the signal that ends those streams. */
  events?: { hub: EventHub; signal: AbortSignal };
}

export class CommandCenter {
  readonly credentials?: MachineCredentials;
  /** The broker policy: used by the EMQX hooks and the embedded broker. */
  readonly brokerAuth?: BrokerAuth;
  /**
   * Where a revoked or rotated machine's open MQTT sessions are ended: EMQX (with `EMQX_API_URL`) from
   * here, the embedded broker once gateway.ts has started it.
   */
  readonly sessions = new MachineSessions();
  /** The HTTP API (role `api`); mount it with `app.route("/", api)`. */
  readonly api?: OpenAPIHono;
  /** Where the API (and the console) queue commands (role `api`). */
  readonly intake?: CommandIntake;
  readonly #deps: CommandCenterDeps;
  readonly #redis?: RedisClient;
  readonly #loops: Promise<void>[] = [];
  /** From this process's intake to its downlink (both roles, Redis queue). */
  readonly #handoff?: CommandHandoff;
  #closing?: Promise<void>;

  /**
   * Builds the command center; ioredis is loaded only when Redis is configured (an edge box on the
   * embedded queue never holds it in its heap).
   */
  static async open(deps: CommandCenterDeps): Promise<CommandCenter> {
    const { config } = deps;
    const roles = config.roles;
    let redis: RedisClient | undefined;
    if (config.redis.url && (roles.has("api") || roles.has("downlink"))) {
      const { openRedis } = await import("../queue/redis/open_redis.ts");
      redis = openRedis(config.redis.url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        connectTimeout: 2000,
        retryStrategy: (times) => Math.min(times * 200, 2000),
      });
      redis.on("error", () => {}); // callers see their command fail and fall back or retry
    }
    return new CommandCenter(deps, redis);
  }

  private constructor(deps: CommandCenterDeps, redis?: RedisClient) {
    this.#deps = deps;
    this.#redis = redis;
    const { config, store, queues } = deps;
    const roles = config.roles;
    if (config.emqx.api) {
      const { url, key, secret } = config.emqx.api;
      this.sessions.add(new EmqxSessions({ apiUrl: url, apiKey: key, apiSecret: secret }));
    }
    if (store) {
      this.credentials = new MachineCredentials({
        store,
        cache: this.#redis ? new RedisCredentialCache(this.#redis) : undefined,
        gatewayUsername: config.mqtt.username,
        serviceUsername: config.mqtt.service?.username,
      });
      this.brokerAuth = new MachineAuth({
        credentials: this.credentials,
        gateway: { username: config.mqtt.username, password: config.mqtt.password },
        service: config.mqtt.service,
      });
    }
    if (roles.has("api") && roles.has("downlink")) this.#handoff = new CommandHandoff();
    if (roles.has("api") && store && queues && this.credentials && this.brokerAuth) {
      const intake = this.intake = new CommandIntake({
        store,
        queue: queues.queue(config.redis.outgoingQueue, `${config.mqtt.clientId}:api`),
        handoff: this.#handoff,
        defaultTtlSeconds: config.commandTtlSeconds,
        metrics: deps.metrics,
      });
      this.api = apiRoutes({
        apiToken: deps.apiToken,
        maxBodyBytes: config.http.maxBodyBytes,
        store,
        intake,
        credentials: this.credentials,
        sessions: this.sessions,
        brokerAuth: this.brokerAuth,
        hookSecret: config.emqx.hookSecret,
        hookChecksPerSecond: config.emqx.hookChecksPerSecond,
        metrics: deps.metrics,
        onlineWindowSeconds: config.machineOnlineSeconds,
        presence: deps.presence,
        events: deps.events,
        deadLetters: {
          incoming: queues.queue(config.redis.incomingQueue, `${config.mqtt.clientId}:api`),
          outgoing: queues.queue(config.redis.outgoingQueue, `${config.mqtt.clientId}:api-dead`),
        },
        guard: false, // app/gateway.ts guards /api/* for every sub-app
      });
    }
  }

  /**
   * Connects Redis, publishes the gateway's identity for EMQX, and starts the sweeper and (role
   * `downlink`, with `connection`) the downlink consumer.
   */
  async start(connection?: MqttConnection): Promise<void> {
    const { config, store, queues, metrics, signal } = this.#deps;
    if (this.#redis) {
      await this.#redis.connect().catch((error) =>
        log.warn("Redis for credentials not reachable yet ({error}); using the database meanwhile", { error })
      );
      await this.credentials?.syncGatewayIdentity(config.mqtt.username, config.mqtt.password).catch((error) =>
        log.warn("Cannot write the gateway's identity to Redis: {error}", { error })
      );
    }
    if (config.roles.has("api") && !config.mqtt.username) {
      log.info("MQTT_USERNAME is empty: the EMQX hooks know no gateway identity (machines only)");
    }
    if (store && (config.roles.has("downlink") || config.roles.has("api"))) {
      this.#loops.push(
        runCommandSweeper({ store, metrics, signal }).catch((error) =>
          log.fatal("The command sweeper stopped: {error}", { error })
        ),
      );
    }
    if (config.roles.has("downlink") && store && queues && connection) {
      const consumer = `${config.mqtt.clientId}:downlink`;
      this.#loops.push(
        runDownlink({
          queue: queues.queue(config.redis.outgoingQueue, consumer),
          store,
          connection,
          defaultTtlSeconds: config.commandTtlSeconds,
          maxBytes: config.http.maxBodyBytes,
          lock: this.#redis
            ? new RedisDownlinkLock(this.#redis, config.redis.outgoingQueue, consumer)
            : undefined,
          handoff: this.#handoff,
          // A previous lock holder's commands come back once its liveness lapses (a TTL after it
          // died) or it hands them back; beyond twice that, publishing starts without them.
          handoverWaitMs: 2 * config.redis.consumerTtlMs,
          metrics,
          signal,
        }).catch((error) => log.fatal("The downlink stopped: {error}", { error })),
      );
      // Every downlink process sweeps, the standbys too: a holder gone for good is found even if
      // no other gateway takes the lock soon. Safe beside the holder: under the lock no other
      // consumer holds commands once it publishes (see the downlink's handover).
      const sweeper = new Reclaimer(
        queues.queue(config.redis.outgoingQueue, `${config.mqtt.clientId}:sweeper`),
        metrics,
      );
      this.#loops.push(
        sweeper.run(config.redis.consumerTtlMs, signal)
          .catch((error) =>
            log.fatal("The sweep of {queue} stopped: {error}", { queue: config.redis.outgoingQueue, error })
          ),
      );
    }
  }

  /** Waits for the loops (the gateway's signal stops them), then closes Redis. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled(this.#loops);
      this.#redis?.disconnect();
    })();
    return this.#closing;
  }
}

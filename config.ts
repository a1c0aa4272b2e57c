/**
 * @module config
 * Reads and validates every setting of the gateway once. Nothing else in the program reads the
 * environment: `main.ts` calls {@link loadConfig} with `Deno.env.toObject()` and passes the typed
 * result down. A bad value is a {@link ConfigError} naming the variable, never a silent default.
 */
import { z } from "zod";
import { parseProxyRegistry, type ProxyConfig } from "./devices/proxy_registry.ts";
import { urlOrigin } from "./lib/redact.ts";
import { parseRedisUrl } from "./queue/redis/redis_url.ts";

/** Thrown when an environment variable has a value the gateway cannot use. */
export class ConfigError extends Error {
  constructor(readonly variable: string, message: string, options?: ErrorOptions) {
    super(`Invalid ${variable}: ${message}`, options);
    this.name = "ConfigError";
  }
}

export const ROLES = ["uplink", "worker", "downlink", "api", "devices"] as const;
export type Role = (typeof ROLES)[number];

const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const positive = z.coerce.number().positive().finite();
const bool = z.enum(["true", "false", "1", "0", "yes", "no"]).transform((v) =>
  ["true", "1", "yes"].includes(v)
);
const url = (protocols: string[]) =>
  z.string().url().refine((v) => protocols.some((p) => v.startsWith(`${p}://`)), {
    message: `must start with ${protocols.map((p) => `${p}://`).join(" or ")}`,
  });

/** One server, a Cluster (`redis+cluster://`) or Sentinel (`redis+sentinel://`): see `redis_url.ts`. */
const redisUrl = z.string().superRefine((value, ctx) => {
  try {
    parseRedisUrl(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

/** Each variable, its schema and its default. Empty strings count as unset. */
const schema = {
  MQTT_URL: url(["mqtt", "mqtts", "tcp", "ws", "wss"]).optional(),
  MQTT_BROKER_HOST: z.string().min(1).optional(),
  MQTT_BROKER_PORT: int(1, 65535).default(2834),
  MQTT_CLIENT_ID: z.string().min(1).max(128).default("star-cloud-gateway"),
  MQTT_USERNAME: z.string().default(""),
  MQTT_PASSWORD: z.string().default(""),
  MQTT_KEEPALIVE: int(0, 65535).default(60),
  MQTT_RECONNECT_DELAY: positive.default(5),
  MQTT_RECONNECT_MAX_DELAY: positive.default(60),
  MQTT_PROTOCOL_VERSION: z.enum(["4", "5"]).optional(),
  MQTT_SHARE_GROUP: z.string().regex(/^[A-Za-z0-9_-]*$/, "letters, digits, _ and - only").default("gateway"),
  MQTT_UPLINK_CONNECTIONS: int(1, 64).default(1),
  MQTT_SESSION_EXPIRY: int(0, 0xffffffff).default(86400),
  MQTT_MAX_PAYLOAD_BYTES: int(64, 256 * 1024 * 1024).default(64 * 1024),
  MQTT_LISTEN_HOST: z.string().min(1).default("127.0.0.1"),
  MQTT_LISTEN_PORT: int(0, 65535).default(2834),
  MQTT_ALLOW_ANONYMOUS: bool.default(false),
  MQTT_PRESENCE_EVENTS: bool.default(false),
  MQTT_SERVICE_USERNAME: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - only").optional(),
  MQTT_SERVICE_PASSWORD: z.string().min(16, "must be at least 16 characters").optional(),
  REDIS_URL: redisUrl.optional(),
  // Default: 1 with redis+sentinel:// (a failover must not lose acknowledged messages), else 0.
  REDIS_WAIT_REPLICAS: int(0, 16).optional(),
  MQTT_INCOMING_QUEUE: z.string().min(1).default("mqtt_incoming_jobs"),
  MQTT_OUTGOING_QUEUE: z.string().min(1).default("mqtt_outgoing_commands"),
  QUEUE_CONSUMER_TTL_MS: int(1000, 3_600_000).default(30_000),
  DATABASE_URL: url(["mysql", "mariadb"]).optional(),
  DATA_DIR: z.string().min(1).default("./data"),
  HTTP_HOST: z.string().min(1).default("0.0.0.0"),
  HTTP_PORT: int(0, 65535).default(5200),
  HTTP_MAX_BODY_BYTES: int(256, 64 * 1024 * 1024).default(64 * 1024),
  HTTP_MAX_IN_FLIGHT: int(1, 100_000).default(256),
  HTTP_BODY_TIMEOUT_MS: int(100, 600_000).default(10_000),
  API_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  VIEWER_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  CONSOLE_LOW_STOCK: int(0, 1_000_000).default(2),
  WORKER_CONCURRENCY: int(1, 64).default(2),
  WORKER_BATCH_SIZE: int(1, 5000).default(200),
  JOB_MAX_ATTEMPTS: int(1, 100).default(5),
  JOB_RETRY_BASE_MS: int(1, 3_600_000).default(1000),
  JOB_RETRY_MAX_MS: int(1, 86_400_000).default(60_000),
  ALERT_WEBHOOK_URL: url(["http", "https"]).optional(),
  COMMAND_TTL_SECONDS: int(1, 30 * 86400).default(300),
  MACHINE_ONLINE_SECONDS: int(1, 30 * 86400).default(180),
  GATEWAY_ROLES: z.string().default(ROLES.join(",")),
  GATEWAY_DRAIN_ON_STOP: bool.default(false),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  LOG_FORMAT: z.enum(["text", "json"]).default("text"),
  STARTUP_WAIT_SECONDS: positive.default(10),
  GATEWAY_ALLOW_NET: z.string().regex(/^[^\s,]+(,[^\s,]+)*$/, "must be host or host:port, comma-separated")
    .optional(),
  // Default: 128, or 80 when this process runs the embedded broker (see DEFAULT_HEAP_MB).
  GATEWAY_HEAP_MB: int(0, 65536).optional(),
  DEVICE_PROXIES: z.string().optional(),
  DEVICE_PROXIES_FILE: z.string().min(1).optional(),
  DEVICE_EVENT_BUFFER: int(0, 1_000_000).default(1000),
  DEVICE_SUMMARY_INTERVAL_MS: int(0, 86_400_000).default(60_000),
  EMQX_HOOK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  EMQX_HOOK_CHECKS_PER_SECOND: int(1, 1_000_000).default(200),
  EMQX_API_URL: url(["http", "https"]).optional(),
  EMQX_API_KEY: z.string().min(1).optional(),
  EMQX_API_SECRET: z.string().min(1).optional(),
} as const;

/** Variables whose value is a secret: an error never shows it, not even in part. */
const SECRETS: ReadonlySet<string> = new Set([
  "MQTT_PASSWORD",
  "MQTT_SERVICE_PASSWORD",
  "API_TOKEN",
  "EMQX_HOOK_SECRET",
  "EMQX_API_KEY",
  "EMQX_API_SECRET",
]);
/** URLs whose path or query may be the secret (a webhook): an error shows their origin only. */
const SECRET_PATH_URLS: ReadonlySet<string> = new Set(["ALERT_WEBHOOK_URL"]);

/**
 * How an error shows the bad value of `name`: secrets not at all, a URL without what comes before
 * its last `@` (the user and password, however malformed), a webhook by its origin.
 */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return "unset";
  if (SECRETS.has(name)) return `${value.length} characters, not shown`;
  if (SECRET_PATH_URLS.has(name)) return `${JSON.stringify(urlOrigin(value))}, path not shown`;
  const at = value.lastIndexOf("@");
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(value)?.[0];
  if (scheme && at > scheme.length) return JSON.stringify(`${scheme}***@${value.slice(at + 1)}`);
  if (scheme) {
    // No user info, unless its "@" is missing: then what looks like a port may be a password.
    const authority = value.slice(scheme.length).split("/")[0]!;
    const plain = authority.split(",").every((node) => /^(\[[^\]]*\]|[^:[\]]*)(:\d*)?$/.test(node));
    if (!plain) return "a URL that is not shown (it may hold a password)";
  }
  return JSON.stringify(value);
}

type Env = Record<string, string | undefined>;
type Raw = { [K in keyof typeof schema]: z.output<(typeof schema)[K]> };

export interface Config {
  mqtt: {
    /** External broker URL, or undefined to run the embedded broker. */
    url?: string;
    /** The variable `url` came from (`MQTT_URL` or `MQTT_BROKER_HOST`), for messages. */
    urlVariable: string;
    clientId: string;
    username: string;
    password: string;
    keepalive: number;
    reconnectDelayMs: number;
    reconnectMaxDelayMs: number;
    protocolVersion: 4 | 5;
    /** `$share` group for uplink subscriptions; empty when shared subscriptions are off. */
    shareGroup: string;
    /**
     * Uplink connections in the share group (each handles one message at a time); 1 without a group.
     * Above 1 the broker spreads one machine's messages over them, so their order is not kept
     * (unless the broker shares by topic, e.g. EMQX `hash_topic`).
     */
    uplinkConnections: number;
    sessionExpiry: number;
    maxPayloadBytes: number;
    listenHost: string;
    listenPort: number;
    allowAnonymous: boolean;
    /** Follow an external broker's `$SYS/brokers/+/clients/+/connected|disconnected` (EMQX). */
    presenceEvents: boolean;
    /**
     * A local service (the device service beside the embedded broker) the gateway's broker policy
     * admits: it may publish and subscribe under `mcs/events/` and nothing else.
     */
    service?: { username: string; password: string };
  };
  redis: {
    url?: string;
    incomingQueue: string;
    outgoingQueue: string;
    /** Replicas that must hold a new job before it counts as stored (`queue/redis/redis_queue.ts`). */
    waitReplicas: number;
    /**
     * A queue consumer not heard from for this long is dead and another process's sweep puts its
     * leased jobs back (both queue backends; `queue/reclaimer.ts`).
     */
    consumerTtlMs: number;
  };
  database: { url?: string; dataDir: string };
  http: {
    host: string;
    port: number;
    maxBodyBytes: number;
    maxInFlight: number;
    /** An `/api/*` request's body must have arrived this long after its headers (else 408). */
    bodyTimeoutMs: number;
    apiToken?: string;
  };
  /** The operator console (`/console`, role `api`). */
  console: {
    /** Signs in read-only: sees everything, changes nothing. */
    viewerToken?: string;
    /** A slot with stock at or below this is low (fleet filter, machine page). */
    lowStock: number;
  };
  worker: {
    concurrency: number;
    batchSize: number;
    maxAttempts: number;
    retryBaseMs: number;
    retryMaxMs: number;
  };
  alertWebhookUrl?: string;
  emqx: {
    /** When set, `/emqx/authn` and `/emqx/authz` answer only requests with this `x-hook-secret`. */
    hookSecret?: string;
    /** Authn checks (database reads) one source address may start per second; 5 s worth at once. */
    hookChecksPerSecond: number;
    /** EMQX's REST API: revoking or rotating a token disconnects the machine's clients there. */
    api?: { url: string; key: string; secret: string };
  };
  commandTtlSeconds: number;
  /** A machine heard from within this many seconds counts as online (`GET /api/v1/machines`). */
  machineOnlineSeconds: number;
  roles: ReadonlySet<Role>;
  /**
   * SIGTERM drains first (leave the share group, finish, end the MQTT session) like SIGUSR2: for
   * gateways that share the uplink with others and may not come back under the same client id.
   */
  drainOnStop: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  /** `text` (one readable line a record) or `json` (LogTape's JSON Lines, for log shippers). */
  logFormat: "text" | "json";
  /** How long the start waits for MySQL, Redis and an external broker to answer (`STARTUP_WAIT_SECONDS`). */
  startupWaitMs: number;
  /**
   * Extra `host` or `host:port` the launcher lets the gateway dial (`GATEWAY_ALLOW_NET`): the addresses
   * a Sentinel or Cluster announces that `REDIS_URL` does not list (a master on another host).
   */
  allowNet: string[];
  /**
   * V8's old-space limit for the gateway process, set by the launcher (`launcher/v8_flags.ts`); 0: V8's
   * own. Default 128, or 80 when the process runs the embedded broker.
   */
  heapMb: number;
  /** Seed 000's device service (role `devices`); see `devices/proxy_registry.ts`. */
  devices: {
    /** From `DEVICE_PROXIES` (JSON array) or the file named by `DEVICE_PROXIES_FILE`; empty: off. */
    proxies: ProxyConfig[];
    eventBuffer: number;
    summaryIntervalMs: number;
  };
}

/** Validates `env` (normally `Deno.env.toObject()`) into a {@link Config}; throws {@link ConfigError}. */
export function loadConfig(env: Env): Config {
  const raw = {} as Record<string, unknown>;
  for (const [name, field] of Object.entries(schema)) {
    const value = env[name]?.trim();
    const parsed = (field as z.ZodType).safeParse(value === "" ? undefined : value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      // No `cause` for a secret: zod's issues may carry the input.
      throw new ConfigError(
        name,
        `${issue?.message ?? "bad value"} (got ${shownValue(name, value)})`,
        SECRETS.has(name) || SECRET_PATH_URLS.has(name) ? undefined : { cause: parsed.error },
      );
    }
    raw[name] = parsed.data;
  }
  const r = raw as Raw;

  let mqttUrl = r.MQTT_URL;
  if (!mqttUrl && r.MQTT_BROKER_HOST) mqttUrl = `mqtt://${r.MQTT_BROKER_HOST}:${r.MQTT_BROKER_PORT}`;

  const roles = new Set<Role>();
  for (const role of r.GATEWAY_ROLES.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new ConfigError("GATEWAY_ROLES", `unknown role "${role}"; expected some of ${ROLES.join(", ")}`);
    }
    roles.add(role as Role);
  }
  if (roles.size === 0) throw new ConfigError("GATEWAY_ROLES", "names no role");
  if (r.VIEWER_TOKEN !== undefined && r.VIEWER_TOKEN === r.API_TOKEN) {
    throw new ConfigError("VIEWER_TOKEN", "must differ from API_TOKEN");
  }
  if (r.MQTT_RECONNECT_MAX_DELAY < r.MQTT_RECONNECT_DELAY) {
    throw new ConfigError("MQTT_RECONNECT_MAX_DELAY", "must not be smaller than MQTT_RECONNECT_DELAY");
  }
  const proxies = loadProxies(r.DEVICE_PROXIES, r.DEVICE_PROXIES_FILE);
  if (r.EMQX_API_URL && (!r.EMQX_API_KEY || !r.EMQX_API_SECRET)) {
    throw new ConfigError("EMQX_API_URL", "needs EMQX_API_KEY and EMQX_API_SECRET (an EMQX API key)");
  }
  if ((r.MQTT_SERVICE_USERNAME === undefined) !== (r.MQTT_SERVICE_PASSWORD === undefined)) {
    const missing = r.MQTT_SERVICE_USERNAME === undefined ? "MQTT_SERVICE_USERNAME" : "MQTT_SERVICE_PASSWORD";
    throw new ConfigError(missing, "set MQTT_SERVICE_USERNAME and MQTT_SERVICE_PASSWORD together");
  }
  if (r.MQTT_SERVICE_USERNAME !== undefined && r.MQTT_SERVICE_USERNAME === r.MQTT_USERNAME) {
    throw new ConfigError(
      "MQTT_SERVICE_USERNAME",
      "must differ from MQTT_USERNAME (the gateway's own identity)",
    );
  }

  return {
    mqtt: {
      url: mqttUrl,
      urlVariable: r.MQTT_URL ? "MQTT_URL" : "MQTT_BROKER_HOST",
      clientId: r.MQTT_CLIENT_ID,
      username: r.MQTT_USERNAME,
      password: r.MQTT_PASSWORD,
      keepalive: r.MQTT_KEEPALIVE,
      reconnectDelayMs: r.MQTT_RECONNECT_DELAY * 1000,
      reconnectMaxDelayMs: r.MQTT_RECONNECT_MAX_DELAY * 1000,
      // The embedded broker (aedes) speaks MQTT 3.1.1 only.
      protocolVersion: r.MQTT_PROTOCOL_VERSION ? (Number(r.MQTT_PROTOCOL_VERSION) as 4 | 5) : mqttUrl ? 5 : 4,
      shareGroup: r.MQTT_SHARE_GROUP,
      uplinkConnections: r.MQTT_UPLINK_CONNECTIONS,
      sessionExpiry: r.MQTT_SESSION_EXPIRY,
      maxPayloadBytes: r.MQTT_MAX_PAYLOAD_BYTES,
      listenHost: r.MQTT_LISTEN_HOST,
      listenPort: r.MQTT_LISTEN_PORT,
      allowAnonymous: r.MQTT_ALLOW_ANONYMOUS,
      presenceEvents: r.MQTT_PRESENCE_EVENTS,
      service: r.MQTT_SERVICE_USERNAME
        ? { username: r.MQTT_SERVICE_USERNAME, password: r.MQTT_SERVICE_PASSWORD! }
        : undefined,
    },
    redis: {
      url: r.REDIS_URL,
      incomingQueue: r.MQTT_INCOMING_QUEUE,
      outgoingQueue: r.MQTT_OUTGOING_QUEUE,
      waitReplicas: r.REDIS_WAIT_REPLICAS ??
        (r.REDIS_URL && parseRedisUrl(r.REDIS_URL).kind === "sentinel" ? 1 : 0),
      consumerTtlMs: r.QUEUE_CONSUMER_TTL_MS,
    },
    database: { url: r.DATABASE_URL, dataDir: r.DATA_DIR },
    http: {
      host: r.HTTP_HOST,
      port: r.HTTP_PORT,
      maxBodyBytes: r.HTTP_MAX_BODY_BYTES,
      maxInFlight: r.HTTP_MAX_IN_FLIGHT,
      bodyTimeoutMs: r.HTTP_BODY_TIMEOUT_MS,
      apiToken: r.API_TOKEN,
    },
    console: { viewerToken: r.VIEWER_TOKEN, lowStock: r.CONSOLE_LOW_STOCK },
    worker: {
      concurrency: r.WORKER_CONCURRENCY,
      batchSize: r.WORKER_BATCH_SIZE,
      maxAttempts: r.JOB_MAX_ATTEMPTS,
      retryBaseMs: r.JOB_RETRY_BASE_MS,
      retryMaxMs: r.JOB_RETRY_MAX_MS,
    },
    alertWebhookUrl: r.ALERT_WEBHOOK_URL,
    emqx: {
      hookSecret: r.EMQX_HOOK_SECRET,
      hookChecksPerSecond: r.EMQX_HOOK_CHECKS_PER_SECOND,
      api: r.EMQX_API_URL
        ? { url: r.EMQX_API_URL, key: r.EMQX_API_KEY!, secret: r.EMQX_API_SECRET! }
        : undefined,
    },
    commandTtlSeconds: r.COMMAND_TTL_SECONDS,
    machineOnlineSeconds: r.MACHINE_ONLINE_SECONDS,
    roles,
    drainOnStop: r.GATEWAY_DRAIN_ON_STOP,
    logLevel: r.LOG_LEVEL,
    logFormat: r.LOG_FORMAT,
    startupWaitMs: r.STARTUP_WAIT_SECONDS * 1000,
    allowNet: r.GATEWAY_ALLOW_NET ? r.GATEWAY_ALLOW_NET.split(",") : [],
    heapMb: r.GATEWAY_HEAP_MB ?? defaultHeapMb(!mqttUrl && runsBroker(roles, proxies.length)),
    devices: {
      proxies,
      eventBuffer: r.DEVICE_EVENT_BUFFER,
      summaryIntervalMs: r.DEVICE_SUMMARY_INTERVAL_MS,
    },
  };
}

/**
 * V8 old-space limits by default. With an external broker the gateway's live heap is small (every
 * buffer of messages and commands in flight is bounded) and 128 MB keeps its RSS under 200 MB under
 * the benchmarks' load. The embedded broker adds its machines' connections to the same process and
 * heap (about 8 KB each; 46 MB live heap in all with 2,000 machines at 5,000 msg/s), and V8 let the
 * heap grow to 80-100 MB with the 128 MB limit, RSS 210-217 MB; 80 MB holds it at 179-186 MB with
 * the same throughput. Raise GATEWAY_HEAP_MB for an embedded broker with many more machines.
 */
export const DEFAULT_HEAP_MB = { external: 128, embeddedBroker: 80 } as const;

function defaultHeapMb(embeddedBroker: boolean): number {
  return embeddedBroker ? DEFAULT_HEAP_MB.embeddedBroker : DEFAULT_HEAP_MB.external;
}

/** Whether these roles connect to a broker (the test app/gateway.ts makes). */
function runsBroker(roles: ReadonlySet<Role>, proxies: number): boolean {
  return roles.has("uplink") || roles.has("downlink") || (roles.has("devices") && proxies > 0);
}

/** The proxy registry from `DEVICE_PROXIES` or the file `DEVICE_PROXIES_FILE` names (not both). */
function loadProxies(inline: string | undefined, file: string | undefined): ProxyConfig[] {
  if (inline !== undefined && file !== undefined) {
    throw new ConfigError(
      "DEVICE_PROXIES_FILE",
      "set either DEVICE_PROXIES or DEVICE_PROXIES_FILE, not both",
    );
  }
  const [variable, read] = inline !== undefined
    ? ["DEVICE_PROXIES", () => inline] as const
    : file !== undefined
    ? ["DEVICE_PROXIES_FILE", () => Deno.readTextFileSync(file)] as const
    : [null, null];
  if (!variable) return [];
  let text: string;
  try {
    text = read();
  } catch (error) {
    throw new ConfigError(variable, `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return parseProxyRegistry(text);
  } catch (error) {
    throw new ConfigError(variable, (error as Error).message, { cause: error });
  }
}

/**
 * Settings of `config` that trade safety away, each with its consequence: the gateway logs them as
 * warnings at start (docs/security.md lists them all).
 */
export function riskySettings(config: Config): string[] {
  const risks: string[] = [];
  const { mqtt, roles } = config;
  const runsBroker = !mqtt.url && (roles.has("uplink") || roles.has("downlink"));
  if (roles.has("uplink") && mqtt.url && mqtt.protocolVersion === 5 && mqtt.sessionExpiry === 0) {
    risks.push(
      "MQTT_SESSION_EXPIRY=0 with the uplink role: the broker ends the gateway's session at every " +
        "disconnect, so what machines publish while the gateway is away (restart, crash, network) is " +
        "acknowledged by the broker and then dropped; lost sales. Keep it at least as long as a restart",
    );
  }
  if (runsBroker && mqtt.allowAnonymous) {
    risks.push(
      `MQTT_ALLOW_ANONYMOUS=true: anyone who reaches ${mqtt.listenHost}:${mqtt.listenPort} may publish ` +
        "heartbeats, errors and sales as any machine and read any one machine's commands (demos only)",
    );
  }
  if (roles.has("api") && !mqtt.url && !runsBroker) {
    risks.push(
      "the api role without the embedded broker in this process (no MQTT_URL, no uplink or downlink " +
        "role): revoking or rotating a machine's token does not close its open session on an embedded " +
        "broker in another process",
    );
  }
  if (roles.has("api") && mqtt.url && !config.emqx.api) {
    risks.push(
      "no EMQX_API_URL: revoking or rotating a machine's token refuses its next connection, but its " +
        "open session on the external broker stays up until it disconnects",
    );
  }
  return risks;
}

/** The names of every variable {@link loadConfig} reads (used by docs and the compose check). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema);

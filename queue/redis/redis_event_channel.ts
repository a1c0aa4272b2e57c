/**
 * @module redis_event_channel
 * The Redis side of the event relay (`app/event_relay.ts`): a pub/sub channel `{Q}:events` and a
 * sorted set `{Q}:events:watchers`, where `Q` is the incoming queue's name (`MQTT_INCOMING_QUEUE`),
 * so two deployments on one Redis, which must use their own queues anyway, never mix. Hash-tagged
 * like the queue's own keys (`key_prefix.ts`); classic PUBLISH / SUBSCRIBE reaches every node of a
 * Cluster whatever the name.
 *
 * Two connections of its own from `open_redis.ts`, so it works on one server, a Cluster and
 * Sentinel: one that publishes and reads the watchers and fails fast while Redis is away (a live
 * event is worth nothing later, and must never queue up in memory), and the subscriber, which
 * ioredis subscribes again after a reconnect, a Cluster node's failure or a Sentinel failover.
 *
 * The watchers' set holds one member per process with a listener, scored with the time its entry
 * lapses (Redis's own clock, so hosts' clocks need not agree); each watcher renews its entry, and
 * a process that dies without leaving drops out after the TTL.
 */
import { getLogger } from "@logtape/logtape";
import { keyPrefix } from "./key_prefix.ts";
import { openRedis, type RedisClient } from "./open_redis.ts";

const log = getLogger(["gateway", "events"]);

// KEYS[1]: the watchers' set. ARGV: member, ttl ms, mode ("watch": add or renew the member,
// "leave": remove it, "read": neither). Drops lapsed members and returns how many are left.
const WATCHERS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[3] == 'watch' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
elseif ARGV[3] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n > 0 and ARGV[3] == 'watch' then redis.call('PEXPIRE', KEYS[1], ttl * 2) end
return n`;

export type WatchMode = "watch" | "leave" | "read";

export class RedisEventChannel {
  /** The pub/sub channel. */
  readonly channel: string;
  /** The sorted set of processes with a listener (member: origin, score: when it lapses, ms). */
  readonly watchersKey: string;
  readonly #pub: RedisClient;
  readonly #sub: RedisClient;
  #onMessage?: (text: string) => void;
  #lastError: string | null = null;
  #closed?: Promise<void>;

  /** `queueName`: the incoming queue's name, whose hash tag names the channel and the set. */
  constructor(url: string, queueName: string) {
    const prefix = keyPrefix(queueName);
    this.channel = `${prefix}:events`;
    this.watchersKey = `${prefix}:events:watchers`;
    this.#pub = openRedis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    this.#sub = openRedis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    const failed = (error: Error) => void (this.#lastError = error.message);
    this.#pub.on("error", failed);
    this.#sub.on("error", failed);
    this.#sub.on("message", (channel: string, message: string) => {
      if (channel === this.channel) this.#onMessage?.(message);
    });
  }

  /** The last connection error, or null. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /**
   * Connects and subscribes; `onMessage` gets the text of every message on the channel, this
   * process's own included. Resolves once subscribed, or rejects when `signal` aborts first (the
   * subscription is still made when Redis comes back).
   */
  async open(onMessage: (text: string) => void, signal?: AbortSignal): Promise<void> {
    this.#onMessage = onMessage;
    // The publisher reconnects by itself once it has tried; until then a publish fails at once.
    const connected = this.#pub.connect().catch((error) =>
      log.warn("Event relay: Redis not reachable yet ({error})", { error })
    );
    // Connects (lazily) and waits in the offline queue until Redis answers.
    const subscribed = this.#sub.subscribe(this.channel);
    const ready = Promise.all([connected, subscribed]);
    ready.catch(() => {}); // the caller sees the outcome below, or the signal
    if (!signal) return void await ready;
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason ?? new Error("aborted"));
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
      await Promise.race([ready, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Publishes `text`; rejects at once while Redis is away. Resolves to the number of receivers. */
  async publish(text: string): Promise<number> {
    return Number(await this.#pub.publish(this.channel, text));
  }

  /** Updates `member`'s entry in the watchers' set (see {@link WatchMode}); returns how many are in it. */
  async watchers(member: string, mode: WatchMode, ttlMs: number): Promise<number> {
    return Number(await this.#pub.eval(WATCHERS, 1, this.watchersKey, member, String(ttlMs), mode));
  }

  /** Closes both connections; idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#onMessage = undefined;
      await Promise.allSettled([this.#pub, this.#sub].map(async (redis) => {
        // QUIT waits for a connection that may never come (Redis down): then just drop it.
        if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
        else redis.disconnect();
      }));
    })();
    return this.#closed;
  }
}

/**
 * @module downlink_lock
 * One downlink consumer at a time across all gateway processes, so that commands to a machine go
 * out in the order they were accepted even when several gateways run the `downlink` role (the
 * others wait as hot standbys). A Redis key `{Q}:leader` (hash-tagged like the queue's keys, so the
 * hand-off script may read it on a Cluster) set only when free and with a TTL, renewed while held;
 * a process that dies loses it after the TTL and another takes over.
 *
 * Gateways from before the hash-tagged layout take `Q:leader` instead. On a single Redis this lock
 * holds both keys at once, so that while old and new gateways run side by side (a rolling
 * upgrade) still only one of them publishes.
 */
import { getLogger } from "@logtape/logtape";
import { keyPrefix } from "../queue/redis/key_prefix.ts";
import type { RedisClient } from "../queue/redis/open_redis.ts";
import { sleep } from "../lib/sleep.ts";
import type { QueueFence } from "../queue/reliable_queue.ts";

const log = getLogger(["gateway", "downlink"]);

/** Held by at most one consumer at a time. The embedded (single-process) mode needs none. */
export interface DownlinkLock {
  /** Resolves once held; returns false when `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<boolean>;
  /** False as soon as the lock may have passed to another consumer. */
  readonly held: boolean;
  /** The key and value the lock is held by, for writes that must happen only while it is held. */
  readonly fence?: QueueFence;
  release(): Promise<void>;
}

// KEYS: the lock's keys. ARGV: owner, ttl. Extends them when every one is ours.
const RENEW = `
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) ~= ARGV[1] then return 0 end
end
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ARGV[2]) end
return 1`;

// Takes them when every one is free or ours.
const TAKE = `
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v and v ~= ARGV[1] then return 0 end
end
for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
return 1`;

const RELEASE = `
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 0`;

export class RedisDownlinkLock implements DownlinkLock {
  readonly #redis: RedisClient;
  readonly #key: string;
  /** `#key`, and the old layout's key on a single Redis. */
  readonly #keys: string[];
  readonly #owner: string;
  readonly #ttlMs: number;
  #heldUntil = 0;
  #renewTimer?: ReturnType<typeof setInterval>;

  constructor(redis: RedisClient, queueName: string, owner: string, ttlMs = 15_000) {
    this.#redis = redis;
    this.#key = `${keyPrefix(queueName)}:leader`;
    const legacy = `${queueName}:leader`;
    this.#keys = redis.isCluster || legacy === this.#key ? [this.#key] : [this.#key, legacy];
    // Unique per process run, so a restarted process does not mistake an old lock for its own.
    this.#owner = `${owner}:${crypto.randomUUID()}`;
    this.#ttlMs = ttlMs;
  }

  get fence(): QueueFence {
    return { key: this.#key, value: this.#owner };
  }

  get held(): boolean {
    return Date.now() < this.#heldUntil;
  }

  async acquire(signal: AbortSignal): Promise<boolean> {
    let waiting = false;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        // Still ours (a renewal failed but the key survived), or free to take.
        const ok = Number(await this.#eval(TAKE)) === 1;
        if (ok) {
          this.#heldUntil = started + this.#ttlMs;
          this.#startRenewing();
          if (waiting) log.info("This gateway now publishes the downlink commands");
          return true;
        }
        if (!waiting) log.info("Another gateway publishes the downlink commands; standing by");
        waiting = true;
      } catch (error) {
        log.warn("Cannot take the downlink lock {key}: {error}", { key: this.#key, error });
      }
      await sleep(Math.max(200, this.#ttlMs / 5), signal);
    }
    return false;
  }

  #startRenewing(): void {
    clearInterval(this.#renewTimer);
    this.#renewTimer = setInterval(async () => {
      const started = Date.now();
      try {
        const renewed = await this.#eval(RENEW);
        if (Number(renewed) === 1) this.#heldUntil = started + this.#ttlMs;
        else this.#lost();
      } catch (error) {
        // Keep #heldUntil: the lock stays ours until its TTL unless Redis says otherwise.
        log.warn("Cannot renew the downlink lock: {error}", { error });
      }
    }, this.#ttlMs / 3);
  }

  #lost(): void {
    if (this.#heldUntil === 0) return;
    log.warn("Lost the downlink lock {key}", { key: this.#key });
    this.#heldUntil = 0;
    clearInterval(this.#renewTimer);
  }

  async release(): Promise<void> {
    clearInterval(this.#renewTimer);
    this.#renewTimer = undefined;
    if (this.#heldUntil === 0) return;
    this.#heldUntil = 0;
    await this.#eval(RELEASE).catch(() => {});
  }

  #eval(script: string): Promise<unknown> {
    return this.#redis.eval(script, this.#keys.length, ...this.#keys, this.#owner, this.#ttlMs);
  }
}

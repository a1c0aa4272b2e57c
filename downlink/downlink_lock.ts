/**
 * @module downlink_lock
 * One downlink consumer at a time across all gateway processes, so that commands to a machine go
 * out in the order they were accepted even when several gateways run the `downlink` role (the
 * others wait as hot standbys). A Redis key `{queue}:leader` set with NX and a TTL, renewed while
 * held; a process that dies loses it after the TTL and another takes over.
 */
import { getLogger } from "@logtape/logtape";
import type { Redis } from "ioredis";
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

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

export class RedisDownlinkLock implements DownlinkLock {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #owner: string;
  readonly #ttlMs: number;
  #heldUntil = 0;
  #renewTimer?: ReturnType<typeof setInterval>;

  constructor(redis: Redis, queueName: string, owner: string, ttlMs = 15_000) {
    this.#redis = redis;
    this.#key = `${queueName}:leader`;
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
        const mine = Number(await this.#redis.eval(RENEW, 1, this.#key, this.#owner, this.#ttlMs)) === 1;
        const ok = mine || await this.#redis.set(this.#key, this.#owner, "PX", this.#ttlMs, "NX") === "OK";
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
        const renewed = await this.#redis.eval(RENEW, 1, this.#key, this.#owner, this.#ttlMs);
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
    await this.#redis.eval(RELEASE, 1, this.#key, this.#owner).catch(() => {});
  }
}

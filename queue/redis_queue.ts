/**
 * @module redis_queue
 * {@link ReliableQueue} on Redis lists, byte-compatible with a Laravel producer or consumer:
 * the main list holds exactly the pushed JSON, `RPUSH` appends, consumers take from the left.
 * Jobs are leased with `BLMOVE` into a per-consumer processing list (never a bare `BLPOP`, which
 * loses the job if the worker dies), so a dead consumer's jobs are put back by `recover()`.
 *
 * Keys beside the main list `Q` (our extension; a Laravel app never needs to read them):
 * `Q:processing:{consumer}`, `Q:consumer:{consumer}` (liveness, expires), `Q:consumers` (set),
 * `Q:delayed` (zset of retries, member `nonce:raw`), `Q:attempts` (hash sha1(raw) → failures),
 * `Q:dead` (list of `{job, reason, attempts, failed_at}`).
 */
import type { Redis } from "ioredis";
import type { DeadLetter, Lease, QueueDepth, ReliableQueue, RetryOptions } from "./reliable_queue.ts";

const ALIVE_TTL_MS = 30_000;

// One round trip per lease while there is work. KEYS: delayed, main, processing, attempts.
// ARGV: now, promote limit, sweep, max, then optionally a job a BLMOVE has already moved into
// processing (it comes first). With sweep = '1' the consumer holds no lease, so whatever is in its
// processing list is stranded and goes back to the head first. Promotes the retries that are due,
// moves up to max jobs into processing, and returns {raws, sha1s, failed attempts, next due or ''}.
const TAKE = `
if ARGV[3] == '1' then
  while redis.call('LMOVE', KEYS[3], KEYS[2], 'LEFT', 'LEFT') do end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local at = string.find(m, ':', 1, true)
  redis.call('RPUSH', KEYS[2], string.sub(m, at + 1))
end
local out = {}
if ARGV[5] then out[1] = ARGV[5] end
local max = tonumber(ARGV[4])
while #out < max do
  local v = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'LEFT')
  if not v then break end
  out[#out + 1] = v
end
local hashes, counts = {}, {}
for i, raw in ipairs(out) do
  hashes[i] = redis.sha1hex(raw)
  counts[i] = redis.call('HGET', KEYS[4], hashes[i]) or '0'
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {out, hashes, counts, nxt[2] or ''}`;

// KEYS: processing, attempts. ARGV: n, n attempt hashes to clear, then the raws to remove. The
// processing list holds the newest lease at its head, so in lease order each raw is found at the
// tail (LREM -1): O(1) each instead of a scan; one script instead of a MULTI of 2n commands.
const ACK = `
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('HDEL', KEYS[2], ARGV[i]) end
for i = n + 2, #ARGV do redis.call('LREM', KEYS[1], -1, ARGV[i]) end
return 0`;

// KEYS: processing. ARGV: old raw, new raw. Returns the new raw's sha1, or false if not leased.
const REWRITE = `
local i = redis.call('LPOS', KEYS[1], ARGV[1])
if not i then return false end
redis.call('LSET', KEYS[1], i, ARGV[2])
return redis.sha1hex(ARGV[2])`;

const PUT_BACK_ALL = `
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'LEFT') do n = n + 1 end
return n`;

export interface RedisQueueOptions {
  /** Stable per process and worker slot, so a restart finds its own unfinished jobs. */
  consumerId: string;
  /** A consumer not seen for this long is dead: `recover()` of another consumer takes its jobs. */
  aliveTtlMs?: number;
}

export class RedisQueue implements ReliableQueue {
  readonly #redis: Redis;
  #blocking?: Redis;
  readonly #consumer: string;
  readonly #aliveTtlMs: number;
  readonly #keys: {
    processing: string;
    alive: string;
    consumers: string;
    delayed: string;
    attempts: string;
    dead: string;
  };
  #aliveAt = 0;
  #closed = false;
  /** Leases handed out by `lease` and not handed back yet (ack, retry, release, deadLetter). */
  #inHand = 0;

  constructor(redis: Redis, readonly name: string, options: RedisQueueOptions) {
    this.#redis = redis;
    this.#consumer = options.consumerId;
    this.#aliveTtlMs = options.aliveTtlMs ?? ALIVE_TTL_MS;
    this.#keys = {
      processing: `${name}:processing:${this.#consumer}`,
      alive: `${name}:consumer:${this.#consumer}`,
      consumers: `${name}:consumers`,
      delayed: `${name}:delayed`,
      attempts: `${name}:attempts`,
      dead: `${name}:dead`,
    };
  }

  async push(...raws: string[]): Promise<void> {
    if (raws.length > 0) await this.#redis.rpush(this.name, ...raws);
  }

  async lease(max: number, blockMs: number, signal?: AbortSignal): Promise<Lease[]> {
    const deadline = Date.now() + Math.max(blockMs, 1);
    let held: string | null = null;
    while (true) {
      // A job the BLMOVE below moved is ours now: it is taken (and worked on) even when aborted.
      if (held === null && (signal?.aborted || this.#closed)) return [];
      await this.#heartbeat();
      const leases = await this.#take(max, held);
      if (leases.length > 0) return leases;
      const wait = Math.min(deadline, this.#nextDue) - Date.now();
      if (wait <= 0) return [];
      // Nothing ready: wait for a push, or for the next retry to fall due (the take above then
      // promotes it). A blocking command holds its connection, so each consumer has its own.
      if (!this.#blocking) {
        this.#blocking = this.#redis.duplicate();
        this.#blocking.on("error", () => {}); // it reconnects by itself, like the shared client
      }
      const seconds = Math.max(wait, 1) / 1000;
      held = await this.#blocking.blmove(this.name, this.#keys.processing, "LEFT", "LEFT", seconds);
      if (held === null && Date.now() >= deadline) return [];
    }
  }

  /** Time (epoch ms) the earliest retry falls due, as of the last take; Infinity if none. */
  #nextDue = Infinity;

  /** Takes up to `max` jobs (`held`, already in processing, first) in one round trip. */
  async #take(max: number, held: string | null): Promise<Lease[]> {
    // With nothing in hand, a job in our processing list was moved by a BLMOVE or LMOVE whose
    // reply was lost (Redis restarted, connection dropped) and that ioredis then sent again:
    // nobody works on it, so it goes back now rather than at the next process start. Not while
    // `held` is there: it would be taken twice.
    const sweep = this.#inHand === 0 && held === null ? "1" : "0";
    const args: (string | number)[] = [Date.now(), 1000, sweep, Math.max(1, max)];
    if (held !== null) args.push(held);
    const [raws, hashes, counts, nextDue] = await this.#redis.eval(
      TAKE,
      4,
      this.#keys.delayed,
      this.name,
      this.#keys.processing,
      this.#keys.attempts,
      ...args,
    ) as [string[], string[], string[], string];
    this.#nextDue = nextDue === "" ? Infinity : Number(nextDue);
    this.#inHand += raws.length;
    return raws.map((raw, i) => ({ raw, attempts: Number(counts[i]), ref: hashes[i]! }));
  }

  async ack(leases: readonly Lease[]): Promise<void> {
    if (leases.length === 0) return;
    this.#handBack(leases.length);
    const retried = leases.filter((l) => l.attempts > 0).map((l) => l.ref);
    await this.#redis.eval(
      ACK,
      2,
      this.#keys.processing,
      this.#keys.attempts,
      retried.length,
      ...retried,
      ...leases.map((l) => l.raw),
    );
  }

  async retry(lease: Lease, delayMs: number, options: RetryOptions = {}): Promise<void> {
    this.#handBack(1);
    const tx = this.#redis.multi()
      .lrem(this.#keys.processing, 1, lease.raw)
      .zadd(this.#keys.delayed, Date.now() + delayMs, `${crypto.randomUUID()}:${lease.raw}`);
    if (options.countAttempt !== false) tx.hincrby(this.#keys.attempts, lease.ref, 1);
    await tx.exec();
  }

  async rewrite(lease: Lease, raw: string): Promise<Lease> {
    const ref = await this.#redis.eval(REWRITE, 1, this.#keys.processing, lease.raw, raw) as string | null;
    if (ref === null) throw new Error(`Cannot rewrite a job of ${this.name}: it is not leased any more`);
    return { raw, attempts: lease.attempts, ref };
  }

  async release(leases: readonly Lease[]): Promise<void> {
    if (leases.length === 0) return;
    this.#handBack(leases.length);
    const tx = this.#redis.multi();
    // Reverse so that the first job ends up first again.
    for (const lease of [...leases].reverse()) {
      tx.lrem(this.#keys.processing, 1, lease.raw).lpush(this.name, lease.raw);
    }
    await tx.exec();
  }

  async deadLetter(lease: Lease | null, reason: string, raw?: string): Promise<void> {
    const job = lease?.raw ?? raw ?? "";
    const entry: DeadLetter = {
      job,
      reason,
      attempts: (lease?.attempts ?? 0) + (lease ? 1 : 0),
      failed_at: new Date().toISOString(),
    };
    if (lease) this.#handBack(1);
    const tx = this.#redis.multi().rpush(this.#keys.dead, JSON.stringify(entry));
    if (lease) tx.lrem(this.#keys.processing, 1, lease.raw).hdel(this.#keys.attempts, lease.ref);
    await tx.exec();
  }

  async recover(): Promise<number> {
    await this.#heartbeat(true);
    let moved = 0;
    const consumers = await this.#redis.smembers(this.#keys.consumers);
    for (const consumer of consumers) {
      const mine = consumer === this.#consumer;
      if (!mine && await this.#redis.exists(`${this.name}:consumer:${consumer}`)) continue;
      moved += Number(
        await this.#redis.eval(PUT_BACK_ALL, 2, `${this.name}:processing:${consumer}`, this.name),
      );
      if (!mine) await this.#redis.srem(this.#keys.consumers, consumer);
    }
    return moved;
  }

  async depth(): Promise<QueueDepth> {
    const consumers = await this.#redis.smembers(this.#keys.consumers);
    const tx = this.#redis.multi().llen(this.name).zcard(this.#keys.delayed).llen(this.#keys.dead);
    for (const c of consumers) tx.llen(`${this.name}:processing:${c}`);
    const results = (await tx.exec()) ?? [];
    const n = results.map(([, v]) => Number(v ?? 0));
    return {
      ready: n[0] ?? 0,
      delayed: n[1] ?? 0,
      dead: n[2] ?? 0,
      processing: n.slice(3).reduce((a, b) => a + b, 0),
    };
  }

  async deadLetters(limit = 100): Promise<DeadLetter[]> {
    const items = await this.#redis.lrange(this.#keys.dead, 0, limit - 1);
    return items.map((s) => JSON.parse(s) as DeadLetter);
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /** Closes only this consumer's blocking connection; the shared client belongs to the caller. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const blocking = this.#blocking;
    this.#blocking = undefined;
    // disconnect() aborts a pending BLMOVE; a job it had already moved stays in our processing
    // list and is put back by recover() on the next start.
    blocking?.disconnect();
    await Promise.resolve();
  }

  /** Counted when handed back, even if the command then fails: the caller has let go of it. */
  #handBack(count: number): void {
    this.#inHand = Math.max(0, this.#inHand - count);
  }

  async #heartbeat(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#aliveAt < this.#aliveTtlMs / 3) return;
    this.#aliveAt = now;
    await this.#redis.multi()
      .set(this.#keys.alive, String(now), "PX", this.#aliveTtlMs)
      .sadd(this.#keys.consumers, this.#consumer)
      .exec();
  }
}

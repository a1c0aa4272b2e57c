/**
 * @module redis_queue
 * {@link ReliableQueue} on Redis lists, byte-compatible with a Laravel producer or consumer:
 * the main list holds exactly the pushed JSON, `RPUSH` appends, consumers take from the left.
 * Jobs are leased with `BLMOVE` into a per-consumer processing list (never a bare `BLPOP`, which
 * loses the job if the worker dies), so a dead consumer's jobs can be put back: by `reclaim()`, the
 * periodic sweep of every live process, once its liveness key has expired, or by `recover()` at its
 * next start under the same id. The liveness key is refreshed by a timer while the handle is open.
 *
 * Keys beside the main list `Q` (our extension; a Laravel app never needs to read them), each
 * under the hash tag `{Q}` (see `key_prefix.ts`) so that on a Redis Cluster they share `Q`'s slot:
 * `{Q}:processing:<consumer>`, `{Q}:woken:<consumer>` (what a blocking wait moved, taken first by
 * the next lease), `{Q}:consumer:<consumer>` (liveness, expires after the TTL), `{Q}:consumers` (set),
 * `{Q}:delayed` (zset of retries, member `nonce:raw`), `{Q}:attempts` (hash sha1(raw) → failures),
 * `{Q}:dead` (list of `{job, reason, attempts, failed_at}`; a dead letter's id is the sha1 of its entry).
 *
 * Up to 2026-12 the same keys were named `Q:processing:…`, `Q:delayed` … (no braces). On a single
 * Redis, `recover()` takes over what that layout left: the processing lists of consumers no longer
 * alive, the retries, the attempt counts and the dead letters (see `#recoverLegacy`).
 */
import { createHash } from "node:crypto";
import type { RedisClient } from "./open_redis.ts";
import { keyPrefix } from "./key_prefix.ts";
import type {
  DeadLetter,
  Lease,
  QueueDepth,
  QueueFence,
  Reclaimed,
  ReliableQueue,
  RetryOptions,
} from "../reliable_queue.ts";

const ALIVE_TTL_MS = 30_000;

/** What Lua's redis.sha1hex gives for the same string. */
const sha1 = (s: string) => createHash("sha1").update(s, "utf8").digest("hex");

/** Lua: `out` = what a blocking wait moved to the woken list (KEYS[woken]), oldest first, now in processing. */
const takeWoken = (woken: number, processing: number) =>
  `local out = {}
while true do
  local v = redis.call('LMOVE', KEYS[${woken}], KEYS[${processing}], 'RIGHT', 'LEFT')
  if not v then break end
  out[#out + 1] = v
end`;

// One round trip per lease while there is work. KEYS: delayed, main, processing, attempts, woken.
// ARGV: now, promote limit, sweep, max. With sweep = '1' the consumer holds no lease, so whatever
// is in its processing list is stranded and goes back to the head first. Promotes the retries that
// are due, takes what a blocking wait moved to the consumer's woken list (it was the head), then up
// to max jobs, into processing, and returns {raws, sha1s, failed attempts, next due or ''}.
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
${takeWoken(5, 3)}
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

// The hand-off. KEYS: main, processing, woken, fence key (or any key when ARGV[1] is ''). ARGV:
// fence value or '', '1' to append when not taken (else nothing is written), then the raws. Only
// when no job waits in the list and the fence holds: takes what a blocking wait moved to the woken
// list (it came first), then the raws, into processing, and returns them with their sha1s.
// Otherwise appends the raws like RPUSH (or not) and returns 0.
const PUSH_LEASED = `
local ok = redis.call('LLEN', KEYS[1]) == 0
if ok and ARGV[1] ~= '' then ok = redis.call('GET', KEYS[4]) == ARGV[1] end
if not ok then
  if ARGV[2] == '1' then
    for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
  end
  return 0
end
${takeWoken(3, 2)}
for i = 3, #ARGV do
  redis.call('LPUSH', KEYS[2], ARGV[i])
  out[#out + 1] = ARGV[i]
end
local hashes = {}
for i, raw in ipairs(out) do hashes[i] = redis.sha1hex(raw) end
return {out, hashes}`;

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

// KEYS: processing, main, woken. What a blocking wait moved goes back first, then the leases, so
// the head of the list ends up: the oldest lease … the newest, then what the wait moved.
const MOVE_BACK = `
local n = 0
while redis.call('LMOVE', KEYS[3], KEYS[2], 'LEFT', 'LEFT') do n = n + 1 end
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'LEFT') do n = n + 1 end`;

const PUT_BACK_ALL = `${MOVE_BACK}
return n`;

// The periodic sweep, for one other consumer. KEYS: its processing, main, woken, its liveness key,
// consumers. ARGV: its id. Alive: touches nothing, returns {0, jobs it holds}. Dead: PUT_BACK_ALL,
// it leaves the set, returns {jobs moved, 0}. The check and the move are one script, so a consumer
// that refreshed its liveness after the caller listed it keeps its jobs, and of two sweeps at once
// the second finds the lists empty.
const RECLAIM = `
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {0, redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[3])}
end
${MOVE_BACK}
redis.call('SREM', KEYS[5], ARGV[1])
return {n, 0}`;

// The old layout's retries, attempt counts and dead letters into the new keys, in one step. KEYS:
// old delayed, new delayed, old attempts, new attempts, old dead, new dead. Dead letters keep
// their order, the old ones first; attempt counts add up.
const MIGRATE_LEGACY = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'MIN')
  redis.call('DEL', KEYS[1])
end
local counts = redis.call('HGETALL', KEYS[3])
for i = 1, #counts, 2 do redis.call('HINCRBY', KEYS[4], counts[i], counts[i + 1]) end
redis.call('DEL', KEYS[3])
while redis.call('LMOVE', KEYS[5], KEYS[6], 'RIGHT', 'LEFT') do end
return 0`;

// Dead letters by id (the sha1 of the stored entry). KEYS: dead, main. ARGV: '1' to replay (else
// discard), then the ids. Each entry found is removed; a replayed one's job goes to the tail.
const DEAD_BY_ID = `
local wanted = {}
for i = 2, #ARGV do wanted[ARGV[i]] = true end
local n = 0
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local id = redis.sha1hex(entry)
  if wanted[id] then
    wanted[id] = nil
    redis.call('LREM', KEYS[1], 1, entry)
    if ARGV[1] == '1' then redis.call('RPUSH', KEYS[2], cjson.decode(entry).job) end
    n = n + 1
  end
end
return n`;

// Every dead letter, a chunk per call so Redis is never blocked long. KEYS: dead, main. ARGV:
// '1' to replay (else discard), chunk size. Returns how many it took.
const DEAD_ALL = `
local n = 0
while n < tonumber(ARGV[2]) do
  local entry = redis.call('LPOP', KEYS[1])
  if not entry then break end
  if ARGV[1] == '1' then redis.call('RPUSH', KEYS[2], cjson.decode(entry).job) end
  n = n + 1
end
return n`;

const DEAD_CHUNK = 1000;

export interface RedisQueueOptions {
  /** Stable per process and worker slot, so a restart finds its own unfinished jobs. */
  consumerId: string;
  /**
   * A consumer whose liveness was not refreshed for this long is dead: `reclaim()` (or `recover()`)
   * of another consumer takes its jobs. Refreshed every third of it while the handle is open.
   */
  aliveTtlMs?: number;
  /**
   * Replicas that must hold a new job before `push` (and `pushLeased`, and a dead letter without
   * a lease) resolves (Redis `WAIT`); 0: the master's answer is enough. A failover promotes a
   * replica, and what the old master had not passed on yet is gone: with 1 here, a message is
   * acknowledged to its machine only once a replica has it. Fails (and the caller stores again)
   * when fewer replicas answer within {@link REPLICA_WAIT_MS}.
   */
  replicas?: number;
}

/** How long a write waits for its replicas before it counts as failed. */
export const REPLICA_WAIT_MS = 2000;

export class RedisQueue implements ReliableQueue {
  readonly #redis: RedisClient;
  #blocking?: RedisClient;
  readonly #consumer: string;
  readonly #aliveTtlMs: number;
  readonly #replicas: number;
  readonly #keys: {
    processing: string;
    woken: string;
    alive: string;
    consumers: string;
    delayed: string;
    attempts: string;
    dead: string;
  };
  /** `{Q}` (see the module doc). */
  readonly #prefix: string;
  #aliveAt = 0;
  /** Refreshes the liveness key while open, from the first heartbeat on (see `#keepAlive`). */
  #aliveTimer?: ReturnType<typeof setInterval>;
  #refreshing?: Promise<void>;
  #closed = false;
  /** Leases handed out by `lease` and not handed back yet (ack, retry, release, deadLetter). */
  #inHand = 0;

  constructor(redis: RedisClient, readonly name: string, options: RedisQueueOptions) {
    this.#redis = redis;
    this.#consumer = options.consumerId;
    this.#aliveTtlMs = options.aliveTtlMs ?? ALIVE_TTL_MS;
    this.#replicas = options.replicas ?? 0;
    this.#prefix = keyPrefix(name);
    this.#keys = RedisQueue.#keysOf(this.#prefix, this.#consumer);
  }

  static #keysOf(prefix: string, consumer: string) {
    return {
      processing: `${prefix}:processing:${consumer}`,
      woken: `${prefix}:woken:${consumer}`,
      alive: `${prefix}:consumer:${consumer}`,
      consumers: `${prefix}:consumers`,
      delayed: `${prefix}:delayed`,
      attempts: `${prefix}:attempts`,
      dead: `${prefix}:dead`,
    };
  }

  async push(...raws: string[]): Promise<void> {
    if (raws.length === 0) return;
    if (this.#replicas === 0) await this.#redis.rpush(this.name, ...raws);
    else await this.#replicated(this.#redis.pipeline().rpush(this.name, ...raws));
  }

  /**
   * Runs `pipeline` followed by `WAIT` (on the same connection, so it covers these writes) and
   * returns the pipeline's replies; throws the first error, or when too few replicas have them.
   */
  async #replicated(pipeline: ReturnType<RedisClient["pipeline"]>): Promise<unknown[]> {
    const results = await pipeline.wait(this.#replicas, REPLICA_WAIT_MS).exec() ?? [];
    const failed = results.find(([error]) => error);
    if (failed || results.length === 0) throw failed?.[0] ?? new Error(`A write to ${this.name} was aborted`);
    const acked = Number(results.at(-1)![1]);
    if (acked < this.#replicas) {
      throw new Error(
        `A write to ${this.name} reached ${acked} of ${this.#replicas} replica(s) within ${REPLICA_WAIT_MS} ms ` +
          "(failover under way, or a replica is down); it may be lost if the master fails now",
      );
    }
    return results.slice(0, -1).map(([, value]) => value);
  }

  async lease(max: number, blockMs: number, signal?: AbortSignal): Promise<Lease[]> {
    const deadline = Date.now() + Math.max(blockMs, 1);
    // Made before the first await, so an interrupt() from now on ends this lease's wait.
    const interrupted = new Promise<"interrupted">((resolve) =>
      this.#interrupt = () => resolve("interrupted")
    );
    try {
      // A blocking wait still pending (an interrupted lease's) means the list has been empty since
      // it began: anything pushed meanwhile ends it. Wait on it at once, without a take first
      // (the downlink's fast lane interrupts its lease hundreds of times a second).
      let take = !this.#waiting || Date.now() >= this.#nextDue;
      while (true) {
        if (signal?.aborted || this.#closed) return [];
        await this.#heartbeat();
        const leases = take ? await this.#take(max) : [];
        take = true;
        if (leases.length > 0) return leases;
        const wait = Math.min(deadline, this.#nextDue) - Date.now();
        if (wait <= 0) return [];
        // Nothing ready: wait for a push, or for the next retry to fall due (the take above then
        // promotes it). A blocking command holds its connection, so each consumer has its own.
        // What it moves goes to the woken list, which the next take (or hand-off) takes first: a
        // wait that outlives this lease (interrupted) loses nothing and reorders nothing.
        if (!this.#blocking) {
          // Same options and topology (a Cluster duplicates into a Cluster); the two signatures
          // differ only in optional overrides, which we do not pass.
          this.#blocking = (this.#redis.duplicate as () => RedisClient).call(this.#redis);
          this.#blocking.on("error", () => {}); // it reconnects by itself, like the shared client
        }
        const seconds = Math.max(wait, 1) / 1000;
        if (!this.#waiting) {
          this.#waiting = this.#blocking.blmove(this.name, this.#keys.woken, "LEFT", "LEFT", seconds)
            .finally(() => this.#waiting = undefined);
          this.#waiting.catch(() => {}); // close() ends it; a lease waiting on it sees the error
        }
        const woke = await Promise.race([this.#waiting, interrupted]);
        if (woke === "interrupted") return [];
        if (woke === null && Date.now() >= deadline) return [];
      }
    } finally {
      this.#interrupt = undefined;
    }
  }

  /** Ends the wait of a pending `lease` at once (it returns what it took, or `[]`). */
  interrupt(): void {
    this.#interrupt?.();
  }

  /**
   * The hand-off: when no job waits in the list and `fence` holds, the raws go straight into this
   * consumer's processing list, after whatever a blocking wait had just moved, and come back as
   * leases in that order; otherwise they are appended like `push` (not at all with `append:
   * false`) and the result is null. One round trip instead of a push, a wake-up and a take.
   */
  async pushLeased(
    raws: readonly string[],
    fence?: QueueFence,
    options: { append?: boolean } = {},
  ): Promise<Lease[] | null> {
    if (raws.length === 0) return [];
    this.#handoffs++; // no take may sweep our processing list while this is on its way
    try {
      await this.#heartbeat();
      const args = [
        PUSH_LEASED,
        4,
        this.name,
        this.#keys.processing,
        this.#keys.woken,
        fence?.key ?? this.#keys.alive,
        fence?.value ?? "",
        options.append === false ? "0" : "1",
        ...raws,
      ] as const;
      const reply = (this.#replicas === 0
        ? await this.#redis.eval(...args)
        : (await this.#replicated(this.#redis.pipeline().eval(...args)))[0]) as 0 | [string[], string[]];
      if (reply === 0) {
        return null;
      }
      const [taken, hashes] = reply;
      this.#inHand += taken.length;
      return taken.map((raw, i) => ({ raw, attempts: 0, ref: hashes[i]! }));
    } finally {
      this.#handoffs--;
    }
  }

  #interrupt?: () => void;
  /** The pending BLMOVE of the blocking connection, shared by the leases that wait on it. */
  #waiting?: Promise<string | null>;
  #handoffs = 0;

  /** Time (epoch ms) the earliest retry falls due, as of the last take; Infinity if none. */
  #nextDue = Infinity;

  /** Takes up to `max` jobs (what a blocking wait moved first) in one round trip. */
  async #take(max: number): Promise<Lease[]> {
    // With nothing in hand, a job in our processing list was moved by a take whose reply was lost
    // (Redis restarted, connection dropped) and that ioredis then sent again: nobody works on it,
    // so it goes back now rather than at the next process start. Not while a hand-off is on its
    // way: its jobs are in our processing list before we know of them.
    const sweep = this.#inHand === 0 && this.#handoffs === 0 ? "1" : "0";
    const [raws, hashes, counts, nextDue] = await this.#redis.eval(
      TAKE,
      5,
      this.#keys.delayed,
      this.name,
      this.#keys.processing,
      this.#keys.attempts,
      this.#keys.woken,
      Date.now(),
      1000,
      sweep,
      Math.max(1, max),
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
    const entry: Omit<DeadLetter, "id"> = {
      job,
      reason,
      attempts: (lease?.attempts ?? 0) + (lease ? 1 : 0),
      failed_at: new Date().toISOString(),
    };
    if (lease) this.#handBack(1);
    if (!lease && this.#replicas > 0) {
      // A message that never became a job: its dead letter is all there is of it.
      await this.#replicated(this.#redis.pipeline().rpush(this.#keys.dead, JSON.stringify(entry)));
      return;
    }
    const tx = this.#redis.multi().rpush(this.#keys.dead, JSON.stringify(entry));
    if (lease) tx.lrem(this.#keys.processing, 1, lease.raw).hdel(this.#keys.attempts, lease.ref);
    await tx.exec();
  }

  async reclaim(): Promise<Reclaimed> {
    const result: Reclaimed = { consumers: [], heldByOthers: 0 };
    const others = (await this.#redis.smembers(this.#keys.consumers)).filter((c) => c !== this.#consumer);
    if (others.length === 0) return result;
    // One round trip for all; every key is under {Q}, so on a Cluster they share one slot.
    const pipeline = this.#redis.pipeline();
    for (const consumer of others) {
      const keys = RedisQueue.#keysOf(this.#prefix, consumer);
      pipeline.eval(RECLAIM, 5, keys.processing, this.name, keys.woken, keys.alive, keys.consumers, consumer);
    }
    const replies = (await pipeline.exec()) ?? [];
    // A failed reply (the connection dropped) fails the sweep: the next one finds what is left.
    const failed = replies.find(([error]) => error);
    if (failed || replies.length !== others.length) {
      throw failed?.[0] ?? new Error(`A sweep of ${this.name} was aborted`);
    }
    replies.forEach(([, reply], i) => {
      const [moved, held] = (reply as [number, number]).map(Number) as [number, number];
      if (moved > 0) result.consumers.push({ consumer: others[i]!, jobs: moved });
      result.heldByOthers += held;
    });
    return result;
  }

  async recover(): Promise<number> {
    await this.#heartbeat(true);
    let moved = await this.#putBackDead(this.#prefix);
    // The old layout's keys lie in other slots; it never ran on a Cluster, so there is none there.
    if (!this.#redis.isCluster && this.#prefix !== this.name) moved += await this.#recoverLegacy();
    return moved;
  }

  /** Puts back the jobs of the consumers under `prefix` that are not alive (and this one's own). */
  async #putBackDead(prefix: string): Promise<number> {
    let moved = 0;
    const consumersKey = `${prefix}:consumers`;
    for (const consumer of await this.#redis.smembers(consumersKey)) {
      const keys = RedisQueue.#keysOf(prefix, consumer);
      const mine = consumer === this.#consumer;
      if (!mine && await this.#redis.exists(keys.alive)) continue;
      moved += Number(await this.#redis.eval(PUT_BACK_ALL, 3, keys.processing, this.name, keys.woken));
      if (!mine || prefix !== this.#prefix) await this.#redis.srem(consumersKey, consumer);
    }
    return moved;
  }

  /**
   * The old layout (`Q:processing:…`, no hash tag): the jobs of its consumers that are gone (a
   * consumer of an older gateway still running keeps its own), and its retries, attempt counts
   * and dead letters, which move into the new keys. An older gateway still running after this
   * writes them there again; the next start of a gateway on this layout moves them.
   */
  async #recoverLegacy(): Promise<number> {
    const moved = await this.#putBackDead(this.name);
    const old = RedisQueue.#keysOf(this.name, this.#consumer);
    const k = this.#keys;
    await this.#redis.eval(
      MIGRATE_LEGACY,
      6,
      old.delayed,
      k.delayed,
      old.attempts,
      k.attempts,
      old.dead,
      k.dead,
    );
    return moved;
  }

  async depth(): Promise<QueueDepth> {
    const consumers = await this.#redis.smembers(this.#keys.consumers);
    const tx = this.#redis.multi().llen(this.name).zcard(this.#keys.delayed).llen(this.#keys.dead);
    for (const c of consumers) {
      const keys = RedisQueue.#keysOf(this.#prefix, c);
      tx.llen(keys.processing).llen(keys.woken);
    }
    const results = (await tx.exec()) ?? [];
    const n = results.map(([, v]) => Number(v ?? 0));
    return {
      ready: n[0] ?? 0,
      delayed: n[1] ?? 0,
      dead: n[2] ?? 0,
      processing: n.slice(3).reduce((a, b) => a + b, 0),
    };
  }

  async deadLetters(limit = 100, offset = 0): Promise<DeadLetter[]> {
    const items = await this.#redis.lrange(this.#keys.dead, offset, offset + limit - 1);
    return items.map((s) => ({ ...(JSON.parse(s) as Omit<DeadLetter, "id">), id: sha1(s) }));
  }

  replayDeadLetters(ids?: readonly string[]): Promise<number> {
    return this.#onDead(true, ids);
  }

  discardDeadLetters(ids?: readonly string[]): Promise<number> {
    return this.#onDead(false, ids);
  }

  async #onDead(replay: boolean, ids?: readonly string[]): Promise<number> {
    const mode = replay ? "1" : "0";
    if (ids) {
      if (ids.length === 0) return 0;
      return Number(await this.#redis.eval(DEAD_BY_ID, 2, this.#keys.dead, this.name, mode, ...ids));
    }
    let total = 0;
    for (;;) {
      const n = Number(await this.#redis.eval(DEAD_ALL, 2, this.#keys.dead, this.name, mode, DEAD_CHUNK));
      total += n;
      if (n < DEAD_CHUNK) return total;
    }
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /**
   * Stops the liveness refresh and closes only this consumer's blocking connection; the shared
   * client belongs to the caller. A refresh on its way is not awaited (Redis may be down).
   */
  async close(options: { handBack?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#aliveTimer);
    this.#aliveTimer = undefined;
    const blocking = this.#blocking;
    this.#blocking = undefined;
    // disconnect() aborts a pending BLMOVE; a job it had already moved stays in our processing
    // list and is put back by recover() on the next start.
    blocking?.disconnect();
    await Promise.resolve();
    if (!options.handBack) return;
    // No next start under this consumer id, and the others' sweeps would take them only once its
    // liveness lapses: what a blocking wait moved and every lease never acked go back to the head
    // of the list now. If Redis cannot be reached, the lists stay for those sweeps, as after a crash.
    await this.#waiting?.catch(() => {});
    const keys = this.#keys;
    await this.#redis.eval(PUT_BACK_ALL, 3, keys.processing, this.name, keys.woken).catch(() => {});
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
    this.#keepAlive();
  }

  /**
   * From the first heartbeat on this handle is a consumer, and its liveness must not depend on its
   * traffic: a worker holding one job for minutes (the database down) or waiting on an idle list
   * is alive. A timer refreshes the key every third of the TTL until `close()`; unref'd, so a
   * handle never closed does not keep the process up. A failed refresh is tried at the next tick.
   */
  #keepAlive(): void {
    if (this.#aliveTimer !== undefined || this.#closed) return;
    this.#aliveTimer = setInterval(() => {
      this.#refreshing ??= this.#heartbeat(true).catch(() => {}).finally(() => this.#refreshing = undefined);
    }, Math.max(1, Math.floor(this.#aliveTtlMs / 3)));
    Deno.unrefTimer(this.#aliveTimer);
  }
}

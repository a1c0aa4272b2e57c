/**
 * @module redis_queue
 * {@link ReliableQueue} on Redis lists, byte-compatible with a Laravel producer or consumer:
 * the main list holds exactly the pushed JSON, `RPUSH` appends, consumers take from the left.
 * Jobs are leased with `BLMOVE` into a per-consumer processing list (never a bare `BLPOP`, which
 * loses the job if the worker dies), so a dead consumer's jobs are put back by `recover()`.
 *
 * Keys beside the main list `Q` (our extension; a Laravel app never needs to read them):
 * `Q:processing:{consumer}`, `Q:woken:{consumer}` (what a blocking wait moved, taken first by the
 * next lease), `Q:consumer:{consumer}` (liveness, expires), `Q:consumers` (set),
 * `Q:delayed` (zset of retries, member `nonce:raw`), `Q:attempts` (hash sha1(raw) → failures),
 * `Q:dead` (list of `{job, reason, attempts, failed_at}`).
 */
import type { Redis } from "ioredis";
import type {
  DeadLetter,
  Lease,
  QueueDepth,
  QueueFence,
  ReliableQueue,
  RetryOptions,
} from "../reliable_queue.ts";

const ALIVE_TTL_MS = 30_000;

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

// KEYS: processing, main, woken. What a blocking wait moved goes back first, then the leases.
const PUT_BACK_ALL = `
local n = 0
while redis.call('LMOVE', KEYS[3], KEYS[2], 'LEFT', 'LEFT') do n = n + 1 end
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
    woken: string;
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
      woken: `${name}:woken:${this.#consumer}`,
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
          this.#blocking = this.#redis.duplicate();
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
      const reply = await this.#redis.eval(
        PUSH_LEASED,
        4,
        this.name,
        this.#keys.processing,
        this.#keys.woken,
        fence?.key ?? this.#keys.alive,
        fence?.value ?? "",
        options.append === false ? "0" : "1",
        ...raws,
      ) as 0 | [string[], string[]];
      if (reply === 0) return null;
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
        await this.#redis.eval(
          PUT_BACK_ALL,
          3,
          `${this.name}:processing:${consumer}`,
          this.name,
          `${this.name}:woken:${consumer}`,
        ),
      );
      if (!mine) await this.#redis.srem(this.#keys.consumers, consumer);
    }
    return moved;
  }

  async depth(): Promise<QueueDepth> {
    const consumers = await this.#redis.smembers(this.#keys.consumers);
    const tx = this.#redis.multi().llen(this.name).zcard(this.#keys.delayed).llen(this.#keys.dead);
    for (const c of consumers) tx.llen(`${this.name}:processing:${c}`).llen(`${this.name}:woken:${c}`);
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

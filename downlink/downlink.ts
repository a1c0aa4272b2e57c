/**
 * @module downlink
 * Queue → machine. Leases commands from the outgoing list (never a bare `BLPOP`: a command in
 * hand when the gateway dies goes back to the list), records each in `machine_commands`, and
 * publishes it QoS 1 to `machine/{target}/command`; the PUBACK marks it `sent`.
 *
 * - Idempotent: a `message_id` already past `queued` is not published again (duplicate pushes,
 *   an API row pushed twice, a crash after the PUBACK was recorded).
 * - Never late: a command whose TTL has passed is marked `expired` and not published; on MQTT 5
 *   the publish carries the remaining TTL as message expiry, so the broker drops it if the
 *   machine is offline until then.
 * - In order: leases are FIFO and the commands of one machine are published one after the other,
 *   each once the one before it has its PUBACK (or has expired), even across batches. Batches are
 *   pipelined: the next is taken and published while the machines of the last one still owe
 *   their PUBACKs, at most {@link MAX_BATCHES_IN_FLIGHT} at a time. With a {@link DownlinkLock}
 *   one gateway consumes at a time, and a new holder publishes nothing until no other consumer
 *   holds commands (a previous holder that died holding some: they come back first).
 * - Fast lane: with a {@link CommandHandoff}, the API's commands of this process arrive already
 *   leased, with their rows, without a round trip through the list (see command_handoff.ts).
 * - Nothing stuck: a broker or database outage holds the command (and those behind it) and
 *   retries with backoff; a bad element goes to the dead letters at once with its reason and the
 *   ones behind it flow on: bad JSON, a bad target, a payload no database can store (refused by
 *   the schema), or a row the database refuses as data ({@link isDataError}: the batch is then
 *   written row by row so only that element is refused).
 */
import { getLogger } from "@logtape/logtape";
import type { CommandRecord, NewCommand, Store } from "../db/store.ts";
import { isDataError } from "../db/data_error.ts";
import { describeIssues } from "../lib/describe_issues.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../lib/metrics.ts";
import { backoffDelay } from "../lib/backoff_delay.ts";
import type { Lease, ReliableQueue } from "../queue/reliable_queue.ts";
import { Reclaimer } from "../queue/reclaimer.ts";
import type { CommandHandoff } from "./command_handoff.ts";
import type { DownlinkLock } from "./downlink_lock.ts";
import type { MqttConnection } from "../mqtt/mqtt_connection.ts";
import {
  commandMessageOf,
  encodeCommandMessage,
  newMessageId,
  type OutgoingCommand,
  outgoingCommandSchema,
} from "../contract/outgoing_command.ts";
import { commandTopic } from "../contract/topics.ts";

const log = getLogger(["gateway", "downlink"]);

export interface DownlinkOptions {
  /** The outgoing queue; its elements are the producer's JSON exactly. */
  queue: ReliableQueue;
  store: Store;
  connection: Pick<MqttConnection, "publish" | "waitConnected">;
  /** TTL of commands pushed by a producer (they carry none); counted from when the gateway takes them. */
  defaultTtlSeconds: number;
  /** Larger elements are dead-lettered, not published (the HTTP path has the same cap). */
  maxBytes?: number;
  lock?: DownlinkLock;
  /**
   * With a lock: how long a new holder waits at most for the commands another consumer still holds
   * (a previous holder: dead, until its liveness lapses; or handing them back) before it publishes
   * anyway. Default 60 s, twice the queue's default liveness TTL.
   */
  handoverWaitMs?: number;
  /** The API's commands of this process, handed over already leased (Redis queue only). */
  handoff?: CommandHandoff;
  metrics?: Metrics;
  signal: AbortSignal;
  batchSize?: number;
  blockMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  now?: () => Date;
}

/** Leased batches published at once while earlier ones wait for their PUBACKs. */
export const MAX_BATCHES_IN_FLIGHT = 64;
/** How long the bookkeeping waits for more batches to end before it records them together. */
const FINISH_LINGER_MS = 10;
/** How often a new lock holder looks again whether a previous holder's commands are back. */
const HANDOVER_POLL_MS = 250;

/** `row`: stored by this process's intake just now, so no need to read it back. */
type Parsed =
  | { lease: Lease; command: OutgoingCommand; row?: CommandRecord }
  | { lease: Lease; invalid: string };
/** A producer's row: stored (or found), or refused by the database as data (with the reason). */
type Recorded = { command: CommandRecord; created: boolean } | { refused: string };
/** sent: published, ack the lease; done: ack it; dead: moved to the dead letters; release: hand it back. */
type Outcome = "sent" | "done" | "dead" | "release";
/** Per leased element: publish the stored row, or an outcome decided at once. */
type Step = Outcome | CommandRecord;
/** A leased batch; `results` once all its publishes have ended. */
interface Batch {
  items: Parsed[];
  plan: Step[];
  outcomes?: Promise<void>;
  results?: Outcome[];
}

/** Runs until `signal` aborts; commands in hand are published and acked, or handed back. */
export function runDownlink(o: DownlinkOptions): Promise<void> {
  return new Downlink(o).run();
}

/**
 * The downlink loop. Each turn: hold the lock, recover once, take a batch (`#next`),
 * record it (`#prepare`), publish each machine's commands in order, and let the
 * finisher record `sent` and ack the leases of the batches that have ended.
 */
export class Downlink {
  readonly #o: DownlinkOptions;
  readonly #now: () => Date;
  readonly #retryBase: number;
  readonly #retryMax: number;
  readonly #encoder = new TextEncoder();
  #recovered = false;
  #failures = 0;
  readonly #reclaimer: Reclaimer;
  /**
   * Being published, or published with `sent` not recorded yet: a second copy of the command in a
   * later batch must not go out again.
   */
  readonly #claimed = new Set<string>();
  /**
   * The last publish of each machine still in flight: the next command of that machine waits for
   * it (order), and is handed back without publishing if it was handed back (a hand-back means
   * shutdown, a lost lock or a lost broker: nothing of that machine may overtake it).
   */
  readonly #machines = new Map<string, Promise<Outcome>>();
  /** Batches leased and not finished yet, in lease order. */
  readonly #batches: Batch[] = [];
  /** Leases to hand back, in lease order; handed back together once nothing is in flight. */
  #back: Lease[] = [];
  #finisher: Promise<void> | undefined;
  #freed: (() => void) | undefined;

  constructor(o: DownlinkOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
    this.#retryBase = o.retryBaseMs ?? 200;
    this.#retryMax = o.retryMaxMs ?? 10_000;
    this.#reclaimer = new Reclaimer(o.queue, o.metrics);
  }

  /** Runs until the signal aborts; commands in hand are published and acked, or handed back. */
  async run(): Promise<void> {
    const o = this.#o;
    // A lease waiting for the list ends at once on shutdown.
    const interrupt = () => o.queue.interrupt?.();
    o.signal.addEventListener("abort", interrupt, { once: true });
    try {
      while (!o.signal.aborted) {
        if (!await this.#holdLock()) break;
        if (this.#back.length > 0) await this.#drain(); // nothing is taken past a hand-back
        if (!await this.#recoverOnce()) break;
        if (!this.#recovered) continue; // the lock was lost during the handover
        const items = await this.#nextOrBackOff();
        if (items === undefined) {
          if (o.signal.aborted) break;
          continue;
        }
        if (items.length === 0) continue;
        this.#dispatch(items, await this.#prepare(items));
        await this.#boundPipeline();
      }
    } finally {
      o.signal.removeEventListener("abort", interrupt);
      await this.#drain(await o.handoff?.detach());
      await o.lock?.release();
    }
  }

  /** With a lock: on losing it, hands everything back and waits to hold it again. False: stopping. */
  async #holdLock(): Promise<boolean> {
    const { lock, handoff, signal } = this.#o;
    if (!lock || lock.held) return true;
    await this.#drain(await handoff?.detach());
    this.#recovered = false;
    return await lock.acquire(signal);
  }

  /** Once per lock tenure: puts back what a stopped gateway left, then opens the fast lane. */
  async #recoverOnce(): Promise<boolean> {
    if (this.#recovered) return true;
    const o = this.#o;
    const recover = await this.#persist("recover unfinished commands", () => o.queue.recover());
    if (recover === undefined) return false;
    if (recover.value > 0) {
      log.info("Put back {count} commands left unfinished by a stopped gateway", { count: recover.value });
    }
    if (o.lock) {
      const handover = await this.#awaitHandover(o.lock);
      if (handover === "stopping") return false;
      if (handover === "lost") return true;
    }
    this.#recovered = true;
    const lock = o.lock;
    o.handoff?.attach(o.queue, lock ? () => lock.held ? lock.fence : undefined : undefined);
    return true;
  }

  /**
   * Under the lock only the holder leases, but a previous holder may still hold commands: it died
   * and its liveness has not lapsed yet (the lock's TTL is the shorter), or it lost the lock and is
   * handing them back. They are older than anything in the list, so publishing before they are back
   * at its head would overtake them: wait until no other consumer holds any, sweeping the dead ones'
   * back as their liveness lapses, for at most `handoverWaitMs` (a live holder stuck for that long
   * is not waited for: its commands may then go out after newer ones).
   */
  async #awaitHandover(lock: DownlinkLock): Promise<"ready" | "lost" | "stopping"> {
    const o = this.#o;
    const deadline = Date.now() + (o.handoverWaitMs ?? 60_000);
    let waiting = false;
    while (!o.signal.aborted) {
      if (!lock.held) return "lost";
      const swept = await this.#persist(
        "look for commands another gateway holds",
        () => this.#reclaimer.sweep(),
      );
      if (swept === undefined) break;
      const held = swept.value.heldByOthers;
      if (held === 0) {
        if (waiting) log.info("The previous downlink's commands are back in the list; publishing");
        return "ready";
      }
      if (Date.now() >= deadline) {
        log.warn(
          "{count} commands are still held by another downlink consumer after {seconds} s; publishing " +
            "without them (they may reach their machines after newer ones)",
          { count: held, seconds: (o.handoverWaitMs ?? 60_000) / 1000 },
        );
        return "ready";
      }
      if (!waiting) {
        log.info(
          "Waiting for {count} commands a previous downlink holds (until it is found dead or hands them back)",
          {
            count: held,
          },
        );
      }
      waiting = true;
      await sleep(HANDOVER_POLL_MS, o.signal);
    }
    return "stopping";
  }

  /** The next batch, or undefined after a failed lease (backed off). */
  async #nextOrBackOff(): Promise<Parsed[] | undefined> {
    try {
      const items = await this.#next();
      this.#failures = 0;
      return items;
    } catch (error) {
      if (this.#o.signal.aborted) return undefined;
      this.#failures++;
      log.error("Cannot lease commands from {queue}: {error}", { queue: this.#o.queue.name, error });
      await sleep(backoffDelay(this.#failures, this.#retryBase, this.#retryMax), this.#o.signal);
      return undefined;
    }
  }

  /** Takes the next batch: what the intake handed over first, else a lease from the list. */
  async #next(): Promise<Parsed[]> {
    const o = this.#o;
    const handed = o.handoff?.take(o.batchSize ?? 100);
    if (handed) {
      return handed.leases.map((lease) => {
        const row = handed.records.get(lease.raw);
        if (!row) return this.#parse(lease);
        return { lease, command: { ...commandMessageOf(row), origin: "api" }, row };
      });
    }
    return (await o.queue.lease(o.batchSize ?? 100, o.blockMs ?? 1000, o.signal)).map((l) => this.#parse(l));
  }

  #parse(lease: Lease): Parsed {
    const { maxBytes } = this.#o;
    const size = this.#encoder.encode(lease.raw).length;
    if (maxBytes !== undefined && size > maxBytes) {
      return { lease, invalid: `Command of ${size} bytes exceeds ${maxBytes} (HTTP_MAX_BODY_BYTES)` };
    }
    let json: unknown;
    try {
      json = JSON.parse(lease.raw);
    } catch (error) {
      return { lease, invalid: `Cannot parse command: ${(error as Error).message}` };
    }
    const result = outgoingCommandSchema.safeParse(json);
    if (!result.success) return { lease, invalid: `Cannot parse command: ${describeIssues(result.error)}` };
    return { lease, command: result.data };
  }

  /**
   * Records the batch's commands in one or two statements (a producer's push has no row yet; the
   * API's have), then says for each what to do: publish the stored row, or an outcome at once.
   */
  async #prepare(items: Parsed[]): Promise<Step[]> {
    const accepted = this.#now();
    if (!await this.#stampMessageIds(items, accepted)) return items.map(() => "release");
    const rows = await this.#record(items, accepted);
    if (!rows) return items.map(() => "release");
    const plan: Step[] = [];
    for (const [i, item] of items.entries()) plan.push(await this.#stepFor(item, rows.get(i)));
    // The same message_id twice in one batch: only its first copy is published.
    for (const [i, step] of plan.entries()) {
      if (typeof step === "string") continue;
      if (this.#claimed.has(step.messageId)) plan[i] = "done";
      this.#claimed.add(step.messageId);
    }
    return plan;
  }

  /**
   * A producer's push without message_id gets its id written into the leased element first: after
   * a crash, recovery puts back the element with that id, so the command is recorded and published
   * under one id, never again under a second one (a second dispense). False: stopping.
   */
  async #stampMessageIds(items: Parsed[], accepted: Date): Promise<boolean> {
    for (const [i, item] of items.entries()) {
      if (!("command" in item) || item.command.message_id) continue;
      const messageId = newMessageId(accepted.getTime());
      const raw = JSON.stringify({ ...JSON.parse(item.lease.raw), message_id: messageId });
      const stamped = await this.#persist(
        "give a command its message_id",
        () => this.#o.queue.rewrite(item.lease, raw),
      );
      if (!stamped) return false;
      items[i] = { lease: stamped.value, command: { ...item.command, message_id: messageId } };
    }
    return true;
  }

  /** Each valid item's row, by index: created now for a producer's push, as handed over for the API's. */
  async #record(items: Parsed[], accepted: Date): Promise<Map<number, Recorded> | undefined> {
    const o = this.#o;
    const valid = items.flatMap((item, i) => "command" in item && !item.row ? [{ i, c: item.command }] : []);
    const stored = valid.length === 0 ? { value: [] } : await this.#persist(
      `record ${valid.length} commands`,
      () =>
        this.#createRows(valid.map(({ c }) => ({
          messageId: c.message_id!,
          serialNo: c.target,
          command: c.command,
          payload: c.payload,
          source: "queue",
          createdAt: accepted,
          expiresAt: new Date(accepted.getTime() + o.defaultTtlSeconds * 1000),
        }))),
    );
    if (!stored) return undefined;
    const rows = new Map<number, Recorded>(valid.map(({ i }, k) => [i, stored.value[k]!]));
    for (const [i, item] of items.entries()) {
      // Counted as queued by the intake that stored it.
      if ("row" in item && item.row) rows.set(i, { command: item.row, created: false });
    }
    return rows;
  }

  /**
   * The batch's rows in one statement; when the database refuses the batch as data, row by row, so
   * the refused rows are named and the others stored. Any other error (an outage) throws: retried.
   */
  async #createRows(commands: NewCommand[]): Promise<Recorded[]> {
    const { store } = this.#o;
    try {
      return await store.createCommands(commands);
    } catch (error) {
      if (!isDataError(error)) throw error;
    }
    const rows: Recorded[] = [];
    for (const c of commands) {
      try {
        rows.push(await store.createCommand(c));
      } catch (error) {
        if (!isDataError(error)) throw error;
        rows.push({ refused: `The database refuses command ${c.messageId}: ${(error as Error).message}` });
      }
    }
    return rows;
  }

  /** What to do with one recorded (or invalid) item. */
  async #stepFor(item: Parsed, stored: Recorded | undefined): Promise<Step> {
    const o = this.#o;
    if ("invalid" in item) return await this.#deadLetter(item.lease, item.invalid);
    const recorded = stored!;
    if ("refused" in recorded) return await this.#deadLetter(item.lease, recorded.refused);
    const { command: row, created } = recorded;
    if (created && item.command.origin === "api") return await this.#failOrphan(row);
    if (created) o.metrics?.commands.inc({ status: "queued" });
    if (row.serialNo !== item.command.target) {
      return await this.#deadLetter(
        item.lease,
        `message_id ${row.messageId} already belongs to a command for ${row.serialNo}`,
      );
    }
    if (row.status !== "queued" || this.#claimed.has(row.messageId)) {
      log.info("Command {messageId} is already {status}; not publishing it again", {
        messageId: row.messageId,
        status: this.#claimed.has(row.messageId) ? "being sent" : row.status,
      });
      return "done";
    }
    return row;
  }

  /**
   * The API stores the row before or while it queues the element: without one, its request failed
   * (the client was told so, or got no answer) and the command must not go out.
   */
  async #failOrphan(row: CommandRecord): Promise<Outcome> {
    const o = this.#o;
    const failed = await this.#persist(
      `mark command ${row.messageId} failed`,
      () =>
        o.store.finishQueuedCommand(row.messageId, "failed", this.#now(), {
          error: "the API's request failed before the command was stored",
        }),
    );
    if (!failed) return "release";
    log.warn("Command {messageId} for {serialNo} was queued by a request that failed; not sent", {
      messageId: row.messageId,
      serialNo: row.serialNo,
    });
    o.metrics?.commands.inc({ status: "failed" });
    return "done";
  }

  /** Publishes the batch's rows (each machine's in order) and starts the finisher. */
  #dispatch(items: Parsed[], plan: Step[]): void {
    const batch: Batch = { items, plan };
    this.#batches.push(batch);
    batch.outcomes = Promise.all(
      plan.map((step) => typeof step === "string" ? step : this.#publishInOrder(step)),
    ).then((results) => void (batch.results = results));
    this.#finisher ??= this.#runFinisher();
  }

  /** Bounded pipeline: beyond the limit, waits until the oldest batches are finished. */
  async #boundPipeline(): Promise<void> {
    while (this.#batches.length >= MAX_BATCHES_IN_FLIGHT) await new Promise<void>((r) => this.#freed = r);
    this.#freed = undefined;
  }

  #publishInOrder(row: CommandRecord): Promise<Outcome> {
    const machines = this.#machines;
    const before = machines.get(row.serialNo);
    const mine: Promise<Outcome> = before
      ? before.then((prior) => prior === "release" ? "release" : this.#publish(row))
      : this.#publish(row);
    machines.set(row.serialNo, mine);
    mine.finally(() => machines.get(row.serialNo) === mine && machines.delete(row.serialNo));
    return mine;
  }

  /** Publishes one stored command; retries until the broker takes it, it expires, or we stop. */
  async #publish(row: CommandRecord): Promise<Outcome> {
    const o = this.#o;
    const body = encodeCommandMessage(commandMessageOf(row));
    for (let attempt = 1;; attempt++) {
      if (row.expiresAt.getTime() <= this.#now().getTime()) {
        await this.#expire(row);
        return "done";
      }
      if (o.signal.aborted || (o.lock && !o.lock.held)) return "release";
      try {
        await o.connection.waitConnected(o.signal);
      } catch {
        return "release";
      }
      const remaining = (row.expiresAt.getTime() - this.#now().getTime()) / 1000;
      if (remaining <= 0) continue;
      try {
        await o.connection.publish(commandTopic(row.serialNo), body, { qos: 1, expirySeconds: remaining });
        // Published: from here the lease is acked whatever happens, so it is never published twice.
        log.debug("Published command {messageId} ({command}) to {serialNo}", {
          messageId: row.messageId,
          command: row.command,
          serialNo: row.serialNo,
        });
        return "sent";
      } catch (error) {
        log.warn("Cannot publish command {messageId} to {serialNo} (attempt {attempt}): {error}", {
          messageId: row.messageId,
          serialNo: row.serialNo,
          attempt,
          error,
        });
        await sleep(backoffDelay(attempt, this.#retryBase, this.#retryMax), o.signal);
      }
    }
  }

  async #expire(row: CommandRecord): Promise<void> {
    const o = this.#o;
    const changed = await this.#persist(
      `expire command ${row.messageId}`,
      () => o.store.finishQueuedCommand(row.messageId, "expired", this.#now()),
    );
    if (changed?.value) {
      o.metrics?.commands.inc({ status: "expired" });
      log.info("Command {messageId} for {serialNo} expired before it could be sent", {
        messageId: row.messageId,
        serialNo: row.serialNo,
      });
    }
  }

  async #deadLetter(lease: Lease, reason: string): Promise<Outcome> {
    const o = this.#o;
    log.warn("Dead-lettering an outgoing command: {reason}", { reason });
    const moved = await this.#persist("dead-letter a command", () => o.queue.deadLetter(lease, reason));
    if (moved === undefined) return "release";
    o.metrics?.deadLettered.inc({ queue: o.queue.name });
    return "dead";
  }

  /**
   * The batches' bookkeeping, in lease order, overlapping the next publishing: every batch whose
   * publishes have all ended by then is finished in one go (one UPDATE, one ack).
   */
  async #runFinisher(): Promise<void> {
    const batches = this.#batches;
    try {
      while (batches.length > 0) {
        await batches[0]!.outcomes;
        // A moment for more batches to end, so one UPDATE and one ack serve more commands: the
        // bookkeeping is off the commands' way, and each commit costs the database an fsync.
        await sleep(FINISH_LINGER_MS);
        let n = 0;
        while (n < batches.length && batches[n]!.results) n++;
        if (n === 0) continue;
        const { rows, published, done } = this.#settle(batches.slice(0, n));
        await this.#finish(rows, published, done).catch((error) =>
          log.error("Cannot finish {count} commands: {error}", { count: rows.length, error })
        );
        batches.splice(0, n);
        this.#freed?.();
      }
    } finally {
      this.#finisher = undefined;
    }
  }

  /** Sorts ended batches' leases into done and handed back, and their published rows. */
  #settle(group: Batch[]): { rows: CommandRecord[]; published: string[]; done: Lease[] } {
    const rows: CommandRecord[] = [];
    const published: string[] = [];
    const done: Lease[] = [];
    for (const { items, plan, results } of group) {
      plan.forEach((step, i) => {
        const result = results![i];
        // Stamped leases carry their message_id now.
        if (result === "release") this.#back.push(items[i]!.lease);
        else if (result === "done" || result === "sent") done.push(items[i]!.lease);
        if (typeof step === "string") return;
        rows.push(step);
        if (result === "sent") published.push(step.messageId);
      });
    }
    return { rows, published, done };
  }

  /**
   * Records `sent` for what was published (one UPDATE), then acks the leases done. If recording
   * fails, the machine's ack or the TTL still ends the command; the lease is acked all the same.
   */
  async #finish(rows: CommandRecord[], published: string[], done: Lease[]): Promise<void> {
    const o = this.#o;
    try {
      if (published.length > 0) {
        await o.store.markCommandsSent(published, this.#now());
        o.metrics?.commands.inc({ status: "sent" }, published.length);
      }
    } catch (error) {
      log.error("{count} commands were published but cannot be marked sent: {error}", {
        count: published.length,
        error,
      });
    }
    // Acked even while shutting down: these were published, and must not be published again.
    await ackPublished(o.queue, done);
    for (const row of rows) this.#claimed.delete(row.messageId);
  }

  /** Waits for every batch in flight, then hands back what they (and `more`) could not publish. */
  async #drain(more: Lease[] = []): Promise<void> {
    while (this.#finisher) await this.#finisher;
    const leases = [...this.#back, ...more];
    this.#back = [];
    if (leases.length === 0) return;
    // Back at the head, in their order, before the next lease: for the next run or lock holder.
    await this.#o.queue.release(leases).catch((error) =>
      log.error("Cannot hand back {count} commands (recover() will): {error}", {
        count: leases.length,
        error,
      })
    );
  }

  /** Runs `fn` until it succeeds; undefined when shutting down first. */
  async #persist<T>(what: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    for (let attempt = 1; !this.#o.signal.aborted; attempt++) {
      try {
        return { value: await fn() };
      } catch (error) {
        log.error("Cannot {what} (attempt {attempt}): {error}", { what, attempt, error });
        await sleep(backoffDelay(attempt, this.#retryBase, this.#retryMax), this.#o.signal);
      }
    }
    return undefined;
  }
}

async function ackPublished(queue: ReliableQueue, leases: Lease[]): Promise<void> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      return await queue.ack(leases);
    } catch (error) {
      log.error("Cannot ack {count} published commands (attempt {attempt}): {error}", {
        count: leases.length,
        attempt,
        error,
      });
      await sleep(backoffDelay(attempt, 100, 2000));
    }
  }
  // Still in the processing list: a restart puts them back, and the consumer finds them `sent`.
}

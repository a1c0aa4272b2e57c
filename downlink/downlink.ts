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
 *   one gateway consumes at a time.
 * - Fast lane: with a {@link CommandHandoff}, the API's commands of this process arrive already
 *   leased, with their rows, without a round trip through the list (see command_handoff.ts).
 * - Nothing stuck: a broker or database outage holds the command (and those behind it) and
 *   retries with backoff; bad elements go to the dead letters at once.
 */
import { getLogger } from "@logtape/logtape";
import type { CommandRecord, Store } from "../db/store.ts";
import { describeIssues } from "../jobs/dispatcher.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../lib/metrics.ts";
import { backoffDelay, type Lease, type ReliableQueue } from "../queue/reliable_queue.ts";
import type { CommandHandoff } from "./command_handoff.ts";
import type { DownlinkLock } from "./downlink_lock.ts";
import type { MqttConnection } from "../mqtt/mqtt_connection.ts";
import {
  commandMessageOf,
  commandTopic,
  encodeCommandMessage,
  newMessageId,
  type OutgoingCommand,
  outgoingCommandSchema,
} from "../contract/outgoing_command.ts";

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

/** `row`: stored by this process's intake just now, so no need to read it back. */
type Parsed =
  | { lease: Lease; command: OutgoingCommand; row?: CommandRecord }
  | { lease: Lease; invalid: string };
/** sent: published, ack the lease; done: ack it; dead: moved to the dead letters; release: hand it back. */
type Outcome = "sent" | "done" | "dead" | "release";

/** Runs until `signal` aborts; commands in hand are published and acked, or handed back. */
export async function runDownlink(o: DownlinkOptions): Promise<void> {
  const now = o.now ?? (() => new Date());
  const retryBase = o.retryBaseMs ?? 200;
  const retryMax = o.retryMaxMs ?? 10_000;
  let recovered = false;
  let failures = 0;

  /** Runs `fn` until it succeeds; undefined when shutting down first. */
  const persist = async <T>(what: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> => {
    for (let attempt = 1; !o.signal.aborted; attempt++) {
      try {
        return { value: await fn() };
      } catch (error) {
        log.error("Cannot {what} (attempt {attempt}): {error}", { what, attempt, error });
        await sleep(backoffDelay(attempt, retryBase, retryMax), o.signal);
      }
    }
    return undefined;
  };

  const encoder = new TextEncoder();
  const parse = (lease: Lease): Parsed => {
    const size = encoder.encode(lease.raw).length;
    if (o.maxBytes !== undefined && size > o.maxBytes) {
      return { lease, invalid: `Command of ${size} bytes exceeds ${o.maxBytes} (HTTP_MAX_BODY_BYTES)` };
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
  };

  const expire = async (row: CommandRecord): Promise<void> => {
    const changed = await persist(
      `expire command ${row.messageId}`,
      () => o.store.finishQueuedCommand(row.messageId, "expired", now()),
    );
    if (changed?.value) {
      o.metrics?.commands.inc({ status: "expired" });
      log.info("Command {messageId} for {serialNo} expired before it could be sent", {
        messageId: row.messageId,
        serialNo: row.serialNo,
      });
    }
  };

  const deadLetter = async (lease: Lease, reason: string): Promise<Outcome> => {
    log.warn("Dead-lettering an outgoing command: {reason}", { reason });
    const moved = await persist("dead-letter a command", () => o.queue.deadLetter(lease, reason));
    if (moved === undefined) return "release";
    o.metrics?.deadLettered.inc({ queue: o.queue.name });
    return "dead";
  };

  /**
   * Being published, or published with `sent` not recorded yet: a second copy of the command in a
   * later batch must not go out again.
   */
  const claimed = new Set<string>();

  /**
   * Records the batch's commands in one or two statements (a producer's push has no row yet; the
   * API's have), then says for each what to do: publish the stored row, or an outcome at once.
   */
  const prepare = async (items: Parsed[]): Promise<(Outcome | CommandRecord)[]> => {
    const accepted = now();
    // A producer's push without message_id gets its id written into the leased element first:
    // after a crash, recovery puts back the element with that id, so the command is recorded and
    // published under one id, never again under a second one (a second dispense).
    for (const [i, item] of items.entries()) {
      if (!("command" in item) || item.command.message_id) continue;
      const messageId = newMessageId(accepted.getTime());
      const raw = JSON.stringify({ ...JSON.parse(item.lease.raw), message_id: messageId });
      const stamped = await persist("give a command its message_id", () => o.queue.rewrite(item.lease, raw));
      if (!stamped) return items.map(() => "release");
      items[i] = { lease: stamped.value, command: { ...item.command, message_id: messageId } };
    }
    const valid = items.flatMap((item, i) => "command" in item && !item.row ? [{ i, c: item.command }] : []);
    const stored = valid.length === 0 ? { value: [] } : await persist(
      `record ${valid.length} commands`,
      () =>
        o.store.createCommands(valid.map(({ c }) => ({
          messageId: c.message_id!,
          serialNo: c.target,
          command: c.command,
          payload: c.payload,
          source: "queue",
          createdAt: accepted,
          expiresAt: new Date(accepted.getTime() + o.defaultTtlSeconds * 1000),
        }))),
    );
    const plan: (Outcome | CommandRecord)[] = items.map(() => "release");
    if (!stored) return plan;
    const rows = new Map(valid.map(({ i }, k) => [i, stored.value[k]!]));
    for (const [i, item] of items.entries()) {
      // Counted as queued by the intake that stored it.
      if ("row" in item && item.row) rows.set(i, { command: item.row, created: false });
    }
    for (const [i, item] of items.entries()) {
      if ("invalid" in item) {
        plan[i] = await deadLetter(item.lease, item.invalid);
        continue;
      }
      const { command: row, created } = rows.get(i)!;
      if (created && item.command.origin === "api") {
        // The API stores the row before or while it queues the element: without one, its request
        // failed (the client was told so, or got no answer) and the command must not go out.
        const failed = await persist(
          `mark command ${row.messageId} failed`,
          () =>
            o.store.finishQueuedCommand(row.messageId, "failed", now(), {
              error: "the API's request failed before the command was stored",
            }),
        );
        if (!failed) {
          plan[i] = "release";
          continue;
        }
        log.warn("Command {messageId} for {serialNo} was queued by a request that failed; not sent", {
          messageId: row.messageId,
          serialNo: row.serialNo,
        });
        o.metrics?.commands.inc({ status: "failed" });
        plan[i] = "done";
        continue;
      }
      if (created) o.metrics?.commands.inc({ status: "queued" });
      if (row.serialNo !== item.command.target) {
        plan[i] = await deadLetter(
          item.lease,
          `message_id ${row.messageId} already belongs to a command for ${row.serialNo}`,
        );
      } else if (row.status !== "queued" || claimed.has(row.messageId)) {
        log.info("Command {messageId} is already {status}; not publishing it again", {
          messageId: row.messageId,
          status: claimed.has(row.messageId) ? "being sent" : row.status,
        });
        plan[i] = "done";
      } else plan[i] = row;
    }
    // The same message_id twice in one batch: only its first copy is published.
    for (const [i, step] of plan.entries()) {
      if (typeof step === "string") continue;
      if (claimed.has(step.messageId)) plan[i] = "done";
      claimed.add(step.messageId);
    }
    return plan;
  };

  /** Publishes one stored command; retries until the broker takes it, it expires, or we stop. */
  const publish = async (row: CommandRecord): Promise<Outcome> => {
    const body = encodeCommandMessage(commandMessageOf(row));
    for (let attempt = 1;; attempt++) {
      if (row.expiresAt.getTime() <= now().getTime()) {
        await expire(row);
        return "done";
      }
      if (o.signal.aborted || (o.lock && !o.lock.held)) return "release";
      try {
        await o.connection.waitConnected(o.signal);
      } catch {
        return "release";
      }
      const remaining = (row.expiresAt.getTime() - now().getTime()) / 1000;
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
        await sleep(backoffDelay(attempt, retryBase, retryMax), o.signal);
      }
    }
  };

  /**
   * The last publish of each machine still in flight: the next command of that machine waits for
   * it (order), and is handed back without publishing if it was handed back (a hand-back means
   * shutdown, a lost lock or a lost broker: nothing of that machine may overtake it).
   */
  const machines = new Map<string, Promise<Outcome>>();
  const publishInOrder = (row: CommandRecord): Promise<Outcome> => {
    const before = machines.get(row.serialNo);
    const mine: Promise<Outcome> = before
      ? before.then((prior) => prior === "release" ? "release" : publish(row))
      : publish(row);
    machines.set(row.serialNo, mine);
    mine.finally(() => machines.get(row.serialNo) === mine && machines.delete(row.serialNo));
    return mine;
  };

  /**
   * Records `sent` for what was published (one UPDATE), then acks the leases done. If recording
   * fails, the machine's ack or the TTL still ends the command; the lease is acked all the same.
   */
  const finish = async (rows: CommandRecord[], published: string[], done: Lease[]): Promise<void> => {
    try {
      if (published.length > 0) {
        await o.store.markCommandsSent(published, now());
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
    for (const row of rows) claimed.delete(row.messageId);
  };

  /** Batches leased and not finished yet, in lease order; `results` once all their publishes ended. */
  const batches: {
    items: Parsed[];
    plan: (Outcome | CommandRecord)[];
    outcomes?: Promise<void>;
    results?: Outcome[];
  }[] = [];
  /** Leases to hand back, in lease order; handed back together once nothing is in flight. */
  let back: Lease[] = [];
  let finisher: Promise<void> | undefined;
  let freed: (() => void) | undefined;
  /**
   * The batches' bookkeeping, in lease order, overlapping the next publishing: every batch whose
   * publishes have all ended by then is finished in one go (one UPDATE, one ack).
   */
  const runFinisher = async (): Promise<void> => {
    try {
      while (batches.length > 0) {
        await batches[0]!.outcomes;
        // A moment for more batches to end, so one UPDATE and one ack serve more commands: the
        // bookkeeping is off the commands' way, and each commit costs the database an fsync.
        await sleep(FINISH_LINGER_MS);
        let n = 0;
        while (n < batches.length && batches[n]!.results) n++;
        if (n === 0) continue;
        const group = batches.slice(0, n);
        const rows: CommandRecord[] = [];
        const published: string[] = [];
        const done: Lease[] = [];
        for (const { items, plan, results } of group) {
          plan.forEach((step, i) => {
            const result = results![i];
            // Stamped leases carry their message_id now.
            if (result === "release") back.push(items[i]!.lease);
            else if (result === "done" || result === "sent") done.push(items[i]!.lease);
            if (typeof step === "string") return;
            rows.push(step);
            if (result === "sent") published.push(step.messageId);
          });
        }
        await finish(rows, published, done).catch((error) =>
          log.error("Cannot finish {count} commands: {error}", { count: rows.length, error })
        );
        batches.splice(0, n);
        freed?.();
      }
    } finally {
      finisher = undefined;
    }
  };
  /** Waits for every batch in flight, then hands back what they (and `more`) could not publish. */
  const drain = async (more: Lease[] = []): Promise<void> => {
    while (finisher) await finisher;
    const leases = [...back, ...more];
    back = [];
    if (leases.length === 0) return;
    // Back at the head, in their order, before the next lease: for the next run or lock holder.
    await o.queue.release(leases).catch((error) =>
      log.error("Cannot hand back {count} commands (recover() will): {error}", {
        count: leases.length,
        error,
      })
    );
  };

  /** Takes the next batch: what the intake handed over first, else a lease from the list. */
  const next = async (): Promise<Parsed[]> => {
    const handed = o.handoff?.take(o.batchSize ?? 100);
    if (handed) {
      return handed.leases.map((lease) => {
        const row = handed.records.get(lease.raw);
        if (!row) return parse(lease);
        return { lease, command: { ...commandMessageOf(row), origin: "api" }, row };
      });
    }
    return (await o.queue.lease(o.batchSize ?? 100, o.blockMs ?? 1000, o.signal)).map(parse);
  };

  // A lease waiting for the list ends at once on shutdown.
  const interrupt = () => o.queue.interrupt?.();
  o.signal.addEventListener("abort", interrupt, { once: true });
  try {
    while (!o.signal.aborted) {
      if (o.lock && !o.lock.held) {
        await drain(await o.handoff?.detach());
        recovered = false;
        if (!await o.lock.acquire(o.signal)) break;
      }
      if (back.length > 0) await drain(); // nothing is taken past a hand-back
      if (!recovered) {
        const recover = await persist("recover unfinished commands", () => o.queue.recover());
        if (recover === undefined) break;
        if (recover.value > 0) {
          log.info("Put back {count} commands left unfinished by a stopped gateway", {
            count: recover.value,
          });
        }
        recovered = true;
        const lock = o.lock;
        o.handoff?.attach(o.queue, lock ? () => lock.held ? lock.fence : undefined : undefined);
      }
      let items: Parsed[];
      try {
        items = await next();
        failures = 0;
      } catch (error) {
        if (o.signal.aborted) break;
        failures++;
        log.error("Cannot lease commands from {queue}: {error}", { queue: o.queue.name, error });
        await sleep(backoffDelay(failures, retryBase, retryMax), o.signal);
        continue;
      }
      if (items.length === 0) continue;

      const plan = await prepare(items);
      const batch: (typeof batches)[number] = { items, plan };
      batches.push(batch);
      batch.outcomes = Promise.all(
        plan.map((step) => typeof step === "string" ? step : publishInOrder(step)),
      ).then((results) => void (batch.results = results));
      finisher ??= runFinisher();
      // Bounded pipeline: beyond the limit, wait until the oldest batches are finished.
      while (batches.length >= MAX_BATCHES_IN_FLIGHT) await new Promise<void>((r) => freed = r);
      freed = undefined;
    }
  } finally {
    o.signal.removeEventListener("abort", interrupt);
    await drain(await o.handoff?.detach());
    await o.lock?.release();
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

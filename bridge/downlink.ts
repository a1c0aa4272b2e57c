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
 * - In order: leases are FIFO, the commands of one machine are handled one after the other, and
 *   the next batch is taken only when this one is done. With a {@link DownlinkLock} one gateway
 *   consumes at a time.
 * - Nothing stuck: a broker or database outage holds the command (and those behind it) and
 *   retries with backoff; bad elements go to the dead letters at once.
 */
import { getLogger } from "@logtape/logtape";
import type { CommandRecord, Store } from "../db/store.ts";
import { describeIssues } from "../jobs/dispatcher.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../metrics.ts";
import { backoffDelay, type Lease, type ReliableQueue } from "../queue/reliable_queue.ts";
import type { DownlinkLock } from "./downlink_lock.ts";
import type { MqttConnection } from "./mqtt_connection.ts";
import {
  commandTopic,
  encodeCommandMessage,
  newMessageId,
  type OutgoingCommand,
  outgoingCommandSchema,
} from "./outgoing_command.ts";

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
  metrics?: Metrics;
  signal: AbortSignal;
  batchSize?: number;
  blockMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  now?: () => Date;
}

type Parsed = { lease: Lease; command: OutgoingCommand } | { lease: Lease; invalid: string };
/** done: ack the lease; dead: already moved to the dead letters; release: hand it back. */
type Outcome = "done" | "dead" | "release";

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

  /** Published, `sent` not recorded yet: a second copy in a later batch must not go out again. */
  const unrecorded = new Set<string>();

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
    const valid = items.flatMap((item, i) => "command" in item ? [{ i, c: item.command }] : []);
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
      if ("invalid" in item) {
        plan[i] = await deadLetter(item.lease, item.invalid);
        continue;
      }
      const { command: row, created } = rows.get(i)!;
      if (created) o.metrics?.commands.inc({ status: "queued" });
      if (row.serialNo !== item.command.target) {
        plan[i] = await deadLetter(
          item.lease,
          `message_id ${row.messageId} already belongs to a command for ${row.serialNo}`,
        );
      } else if (row.status !== "queued" || unrecorded.has(row.messageId)) {
        log.info("Command {messageId} is already {status}; not publishing it again", {
          messageId: row.messageId,
          status: unrecorded.has(row.messageId) ? "sent" : row.status,
        });
        plan[i] = "done";
      } else plan[i] = row;
    }
    // The same message_id twice in one batch: only its first copy is published.
    const first = new Set<string>();
    for (const [i, step] of plan.entries()) {
      if (typeof step === "string") continue;
      if (first.has(step.messageId)) plan[i] = "done";
      first.add(step.messageId);
    }
    return plan;
  };

  /** Publishes one stored command; retries until the broker takes it, it expires, or we stop. */
  const publish = async (row: CommandRecord): Promise<Outcome> => {
    const body = encodeCommandMessage({
      target: row.serialNo,
      command: row.command,
      payload: row.payload,
      message_id: row.messageId,
    });
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
        unrecorded.add(row.messageId);
        log.debug("Published command {messageId} ({command}) to {serialNo}", {
          messageId: row.messageId,
          command: row.command,
          serialNo: row.serialNo,
        });
        return "done";
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

  /** One machine's commands, in lease order; after a hand-back, the rest are handed back too. */
  const publishSerially = async (rows: CommandRecord[]): Promise<Outcome[]> => {
    const outcomes: Outcome[] = [];
    for (const row of rows) outcomes.push(outcomes.includes("release") ? "release" : await publish(row));
    return outcomes;
  };

  /**
   * Records `sent` for what was published (one UPDATE), then acks the batch's leases. Runs while
   * the next batch is taken and published. If recording fails, the machine's ack or the TTL
   * still ends the command; the lease is acked all the same.
   */
  const finish = async (published: string[], done: Lease[]): Promise<void> => {
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
    for (const id of published) unrecorded.delete(id);
  };
  let finishing: Promise<void> = Promise.resolve();

  try {
    while (!o.signal.aborted) {
      if (o.lock && !o.lock.held) {
        recovered = false;
        if (!await o.lock.acquire(o.signal)) break;
      }
      if (!recovered) {
        const recover = await persist("recover unfinished commands", () => o.queue.recover());
        if (recover === undefined) break;
        if (recover.value > 0) {
          log.info("Put back {count} commands left unfinished by a stopped gateway", {
            count: recover.value,
          });
        }
        recovered = true;
      }
      let leases: Lease[];
      try {
        leases = await o.queue.lease(o.batchSize ?? 100, o.blockMs ?? 1000, o.signal);
        failures = 0;
      } catch (error) {
        if (o.signal.aborted) break;
        failures++;
        log.error("Cannot lease commands from {queue}: {error}", { queue: o.queue.name, error });
        await sleep(backoffDelay(failures, retryBase, retryMax), o.signal);
        continue;
      }
      if (leases.length === 0) continue;

      const items = leases.map(parse);
      const plan = await prepare(items);
      const byTarget = new Map<string, number[]>();
      for (const [i, step] of plan.entries()) {
        if (typeof step === "string") continue;
        byTarget.set(step.serialNo, [...byTarget.get(step.serialNo) ?? [], i]);
      }
      const outcomes = plan.map((step) => typeof step === "string" ? step : "release");
      await Promise.all([...byTarget.values()].map(async (indexes) => {
        const results = await publishSerially(indexes.map((i) => plan[i] as CommandRecord));
        indexes.forEach((i, k) => outcomes[i] = results[k]!);
      }));
      const published = plan.flatMap((step, i) =>
        typeof step !== "string" && outcomes[i] === "done" && unrecorded.has(step.messageId)
          ? [step.messageId]
          : []
      );
      const held = items.map((item) => item.lease); // stamped ones carry their message_id now
      const back = held.filter((_, i) => outcomes[i] === "release");
      if (back.length > 0) {
        // Back at the head, in their order, before the next lease: for the next run or lock holder.
        await o.queue.release(back).catch((error) =>
          log.error("Cannot hand back {count} commands (recover() will): {error}", {
            count: back.length,
            error,
          })
        );
      }
      // One batch's bookkeeping in flight at a time, overlapping the next batch's publishing.
      await finishing;
      finishing = finish(published, held.filter((_, i) => outcomes[i] === "done"));
    }
  } finally {
    await finishing;
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

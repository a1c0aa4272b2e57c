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

  const handle = async (item: Parsed): Promise<Outcome> => {
    if ("invalid" in item) {
      log.warn("Dead-lettering an outgoing command: {reason}", { reason: item.invalid });
      const moved = await persist(
        "dead-letter a command",
        () => o.queue.deadLetter(item.lease, item.invalid),
      );
      if (moved === undefined) return "release";
      o.metrics?.deadLettered.inc({ queue: o.queue.name });
      return "dead";
    }
    const c = item.command;
    const accepted = now();
    const stored = await persist(`record command for ${c.target}`, () =>
      o.store.createCommand({
        messageId: c.message_id ?? newMessageId(accepted.getTime()),
        serialNo: c.target,
        command: c.command,
        payload: c.payload,
        source: "queue",
        createdAt: accepted,
        expiresAt: new Date(accepted.getTime() + o.defaultTtlSeconds * 1000),
      }));
    if (!stored) return "release";
    const row = stored.value.command;
    if (stored.value.created) o.metrics?.commands.inc({ status: "queued" });
    if (row.serialNo !== c.target) {
      const reason = `message_id ${row.messageId} already belongs to a command for ${row.serialNo}`;
      log.warn("Dead-lettering an outgoing command for {target}: {reason}", { target: c.target, reason });
      const moved = await persist("dead-letter a command", () => o.queue.deadLetter(item.lease, reason));
      if (moved === undefined) return "release";
      o.metrics?.deadLettered.inc({ queue: o.queue.name });
      return "dead";
    }
    if (row.status !== "queued") {
      log.info("Command {messageId} is already {status}; not publishing it again", {
        messageId: row.messageId,
        status: row.status,
      });
      return "done";
    }
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
        break;
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
    // Published: from here the lease is acked whatever happens, so it is never published twice.
    // If recording `sent` fails, the machine's ack or the TTL still ends the command.
    try {
      await o.store.markCommandSent(row.messageId, now());
      o.metrics?.commands.inc({ status: "sent" });
    } catch (error) {
      log.error("Command {messageId} was published but cannot be marked sent: {error}", {
        messageId: row.messageId,
        error,
      });
    }
    log.debug("Published command {messageId} ({command}) to {serialNo}", {
      messageId: row.messageId,
      command: row.command,
      serialNo: row.serialNo,
    });
    return "done";
  };

  /** One machine's commands, in lease order; after a hand-back, the rest are handed back too. */
  const handleSerially = async (items: Parsed[]): Promise<Outcome[]> => {
    const outcomes: Outcome[] = [];
    for (const item of items) {
      outcomes.push(outcomes.includes("release") ? "release" : await handle(item));
    }
    return outcomes;
  };

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

      const byTarget = new Map<string, Parsed[]>();
      for (const lease of leases) {
        const item = parse(lease);
        const key = "command" in item ? item.command.target : "\u0000invalid";
        byTarget.set(key, [...byTarget.get(key) ?? [], item]);
      }
      const groups = [...byTarget.values()];
      const results = await Promise.all(groups.map(handleSerially));
      const outcome = new Map<Lease, Outcome>();
      groups.forEach((items, g) => items.forEach((item, i) => outcome.set(item.lease, results[g]![i]!)));
      const done = leases.filter((l) => outcome.get(l) === "done");
      // Acked even while shutting down: these were published, and must not be published again.
      await ackPublished(o.queue, done);
      const back = leases.filter((l) => outcome.get(l) === "release");
      if (back.length > 0) {
        // Back at the head, in their order, for the next run or the next lock holder.
        const ordered = back;
        await o.queue.release(ordered).catch((error) =>
          log.error("Cannot hand back {count} commands (recover() will): {error}", {
            count: ordered.length,
            error,
          })
        );
      }
    }
  } finally {
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

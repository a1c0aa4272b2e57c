/**
 * @module command_intake
 * How the HTTP API accepts a command: the `machine_commands` row first (status `queued`, with its
 * TTL), then the contract's element pushed onto the outgoing queue, the same one a Laravel
 * producer `RPUSH`es to, so both paths share one pipeline and one order. If the push fails the
 * command is marked `failed` at once, never left queued with nothing to send it.
 *
 * Requests arriving together are stored and pushed together ({@link GroupCommit}): one multi-row
 * INSERT and one `RPUSH` for all of them, each request answered when its own command is stored and
 * queued. At 1,000 commands/s the two round trips per command were most of the intake's cost.
 *
 * When this process's downlink can take them ({@link CommandHandoff}), the elements go to it
 * already leased instead of through the list; for ids made here (every row new) that happens
 * while the INSERT runs, never appending to the list before the row is stored. The elements carry
 * `"origin": "api"`: one whose row never got stored (a crash in between) is never published.
 */
import { isDeepStrictEqual } from "node:util";
import { getLogger } from "@logtape/logtape";
import { isConnectionError } from "../db/connection_error.ts";
import { isDataError } from "../db/data_error.ts";
import type { CommandRecord, NewCommand, Store } from "../db/store.ts";
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from "../lib/errors.ts";
import { GroupCommit, type ItemResult } from "../lib/group_commit.ts";
import type { Metrics } from "../lib/metrics.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import type { CommandHandoff } from "./command_handoff.ts";
import { commandMessageOf, encodeCommandMessage, newMessageId } from "../contract/outgoing_command.ts";

/** The outgoing queue's element for a command the API stored. */
function element(c: Parameters<typeof commandMessageOf>[0]): string {
  return encodeCommandMessage({ ...commandMessageOf(c), origin: "api" });
}

const log = getLogger(["gateway", "downlink"]);

/** A failed write as the request's result: a data error is the client's input, anything else is ours. */
function refusal(error: unknown): { ok: false; error: unknown } {
  if (!isDataError(error)) return { ok: false, error };
  return {
    ok: false,
    error: new ValidationError(`The database cannot store this command: ${(error as Error).message}`, {
      cause: error,
    }),
  };
}

export interface CommandRequest {
  serialNo: string;
  command: string;
  payload: Record<string, unknown>;
  ttlSeconds?: number;
  /** Lets a client retry safely: the same id is one command. */
  messageId?: string;
}

export interface CommandIntakeOptions {
  store: Store;
  /** The outgoing queue (only `push` is used). */
  queue: Pick<ReliableQueue, "push">;
  /** The downlink of this process, when it runs: fresh commands go to it already leased. */
  handoff?: CommandHandoff;
  defaultTtlSeconds: number;
  metrics?: Metrics;
  now?: () => Date;
  /** Most commands stored and pushed in one go (default 200). */
  maxBatch?: number;
  /** Batches stored and pushed at once (default 2); more requests wait for the next batch. */
  maxInFlight?: number;
}

type Accepted = { command: CommandRecord; created: boolean };
/** `fresh`: its message_id was made here, not sent by the client, so it cannot be stored yet. */
type Asked = { command: NewCommand; fresh: boolean };

/** Serials known to exist; cleared when full. Machines are never deleted, so a hit stays true. */
const KNOWN_MACHINES_MAX = 100_000;

export class CommandIntake {
  readonly #o: CommandIntakeOptions;
  readonly #known = new Set<string>();
  readonly #group: GroupCommit<Asked, Accepted>;

  constructor(options: CommandIntakeOptions) {
    this.#o = options;
    this.#group = new GroupCommit(
      (batch) => this.#storeAndPush(batch),
      options.maxBatch ?? 200,
      options.maxInFlight ?? 2,
    );
  }

  /** Stores and queues a command; `created` is false when `messageId` was already accepted. */
  async accept(r: CommandRequest): Promise<Accepted> {
    const { store } = this.#o;
    if (!this.#known.has(r.serialNo)) {
      // One query fewer per command for a machine seen before: at 1,000 commands/s it counts.
      if (!await store.machineExists(r.serialNo)) {
        throw new NotFoundError(
          `No machine ${r.serialNo}: issue it a token or let it send a heartbeat first`,
        );
      }
      if (this.#known.size >= KNOWN_MACHINES_MAX) this.#known.clear();
      this.#known.add(r.serialNo);
    }
    const now = this.#o.now?.() ?? new Date();
    const ttl = r.ttlSeconds ?? this.#o.defaultTtlSeconds;
    return await this.#group.add({
      command: {
        messageId: r.messageId ?? newMessageId(now.getTime()),
        serialNo: r.serialNo,
        command: r.command,
        payload: r.payload,
        source: "api",
        createdAt: now,
        expiresAt: new Date(now.getTime() + ttl * 1000),
      },
      fresh: r.messageId === undefined,
    });
  }

  /**
   * One batch: its rows in one statement (or two), its elements in one push. With the downlink's
   * hand-off ready and only ids made here (so every row is new), the elements are leased to the
   * downlink while the rows are written: one round trip less before the publish.
   */
  async #storeAndPush(batch: Asked[]): Promise<ItemResult<Accepted>[]> {
    const handoff = this.#o.handoff;
    let stored: ItemResult<Accepted>[];
    let handedOver = false;
    if (handoff?.ready && batch.every((a) => a.fresh)) {
      const raws = batch.map((a) => element(a.command));
      ({ stored, taken: handedOver } = await handoff.storeWhileLeasing(
        raws,
        () => this.#record(batch),
        (results) => results.map((r) => r.ok && r.value.created ? r.value.command : undefined),
      ));
    } else stored = await this.#record(batch);
    const results: (ItemResult<Accepted> | undefined)[] = stored.map(() => undefined);
    const toPush: number[] = [];
    for (const [k, s] of stored.entries()) {
      if (!s.ok) {
        results[k] = s;
        continue;
      }
      const { command, created } = s.value;
      const asked = batch[k]!.command;
      if (!created) {
        const same = command.serialNo === asked.serialNo && command.command === asked.command &&
          isDeepStrictEqual(command.payload, asked.payload);
        if (!same) {
          results[k] = {
            ok: false,
            error: new ConflictError(`message_id ${asked.messageId} was already used for another command`),
          };
          continue;
        }
        // A retry of a request whose push may not have happened: push again. The consumer
        // publishes a message_id once, whatever the number of copies.
        if (command.status !== "queued") {
          results[k] = s;
          continue;
        }
      } else {
        this.#o.metrics?.commands.inc({ status: "queued" });
        if (handedOver) {
          results[k] = s;
          continue;
        }
      }
      toPush.push(k);
    }
    if (toPush.length > 0) {
      const accepted = toPush.map((k) => (stored[k] as { value: Accepted }).value);
      const commands = accepted.map((a) => a.command);
      const raws = commands.map(element);
      try {
        if (handoff) {
          // Only rows made just now go along: an older one may have moved on since it was read.
          await handoff.push(this.#o.queue, raws, accepted.map((a) => a.created ? a.command : undefined));
        } else await this.#o.queue.push(...raws);
        for (const k of toPush) results[k] = stored[k];
      } catch (error) {
        await this.#failUnqueued(commands, error);
        for (const [i, k] of toPush.entries()) {
          results[k] = {
            ok: false,
            error: new UnavailableError(
              `Cannot queue command ${commands[i]!.messageId}: the queue is unreachable`,
              { cause: error },
            ),
          };
        }
      }
    }
    return results.map((r) => r!);
  }

  /**
   * The batch's rows; one bad command does not fail the others, an unreachable database fails all.
   * A row the database refuses as data is the client's 422 (the schema should have caught it).
   */
  async #record(batch: Asked[]): Promise<ItemResult<Accepted>[]> {
    const { store } = this.#o;
    try {
      const commands = batch.map((a) => a.command);
      const fresh = batch.every((a) => a.fresh);
      return (await store.createCommands(commands, { fresh })).map((value) => ({ ok: true, value }));
    } catch (error) {
      if (batch.length === 1 || isConnectionError(error)) return batch.map(() => refusal(error));
      return await Promise.all(
        batch.map(({ command }) =>
          store.createCommand(command).then((value): ItemResult<Accepted> => ({ ok: true, value }), refusal)
        ),
      );
    }
  }

  /** Stored but never pushed: `failed` at once, so nothing waits for a command no one will send. */
  async #failUnqueued(commands: CommandRecord[], error: unknown): Promise<void> {
    log.error("Cannot queue {count} commands (first {messageId} for {serialNo}): {error}", {
      count: commands.length,
      messageId: commands[0]!.messageId,
      serialNo: commands[0]!.serialNo,
      error,
    });
    const at = new Date();
    await Promise.all(commands.map(async (c) => {
      const failed = await this.#o.store.finishQueuedCommand(c.messageId, "failed", at, {
        error: "the gateway could not queue the command",
      }).catch(() => false);
      if (failed) this.#o.metrics?.commands.inc({ status: "failed" });
    }));
  }
}

/**
 * @module command_intake
 * How the HTTP API accepts a command: the `machine_commands` row first (status `queued`, with its
 * TTL), then the contract's element pushed onto the outgoing queue, the same one a Laravel
 * producer `RPUSH`es to, so both paths share one pipeline and one order. If the push fails the
 * command is marked `failed` at once, never left queued with nothing to send it.
 */
import { isDeepStrictEqual } from "node:util";
import { getLogger } from "@logtape/logtape";
import type { CommandRecord, Store } from "../db/store.ts";
import { ConflictError, NotFoundError, UnavailableError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import { encodeCommandMessage, newMessageId } from "./outgoing_command.ts";

const log = getLogger(["gateway", "downlink"]);

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
  defaultTtlSeconds: number;
  metrics?: Metrics;
  now?: () => Date;
}

/** Serials known to exist; cleared when full. Machines are never deleted, so a hit stays true. */
const KNOWN_MACHINES_MAX = 100_000;

export class CommandIntake {
  readonly #o: CommandIntakeOptions;
  readonly #known = new Set<string>();

  constructor(options: CommandIntakeOptions) {
    this.#o = options;
  }

  /** Stores and queues a command; `created` is false when `messageId` was already accepted. */
  async accept(r: CommandRequest): Promise<{ command: CommandRecord; created: boolean }> {
    const { store, queue } = this.#o;
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
    const messageId = r.messageId ?? newMessageId(now.getTime());
    const ttl = r.ttlSeconds ?? this.#o.defaultTtlSeconds;
    const { command, created } = await store.createCommand({
      messageId,
      serialNo: r.serialNo,
      command: r.command,
      payload: r.payload,
      source: "api",
      createdAt: now,
      expiresAt: new Date(now.getTime() + ttl * 1000),
    });
    if (!created) {
      const same = command.serialNo === r.serialNo && command.command === r.command &&
        isDeepStrictEqual(command.payload, r.payload);
      if (!same) {
        throw new ConflictError(`message_id ${messageId} was already used for another command`);
      }
      // A retry of a request whose push may not have happened: push again. The consumer
      // publishes a message_id once, whatever the number of copies.
      if (command.status !== "queued") return { command, created };
    } else {
      this.#o.metrics?.commands.inc({ status: "queued" });
    }
    try {
      await queue.push(encodeCommandMessage({
        target: command.serialNo,
        command: command.command,
        payload: command.payload,
        message_id: command.messageId,
      }));
    } catch (error) {
      log.error("Cannot queue command {messageId} for {serialNo}: {error}", {
        messageId,
        serialNo: r.serialNo,
        error,
      });
      const failed = await store.finishQueuedCommand(messageId, "failed", new Date(), {
        error: "the gateway could not queue the command",
      }).catch(() => false);
      if (failed) this.#o.metrics?.commands.inc({ status: "failed" });
      throw new UnavailableError(`Cannot queue command ${messageId}: the queue is unreachable`, {
        cause: error,
      });
    }
    return { command, created };
  }
}

/**
 * @module command_ack
 * `machine/{serial}/command/ack` → the command's status: `{"message_id", "status", "detail"?}`
 * with status `ok` → succeeded, `failed` / `rejected` → failed, `received` / `delivered` →
 * delivered. Only the command's own target may ack it: an ack from another serial, or for an
 * unknown message_id, is logged and dropped (nothing to retry). Repeats are harmless.
 */
import { getLogger } from "@logtape/logtape";
import { z } from "zod";
import type { CommandAck } from "../../db/store.ts";
import { defineJob } from "../job_handler.ts";

const log = getLogger(["gateway", "worker", "command_ack"]);

const STATUS: Record<string, CommandAck["status"]> = {
  ok: "succeeded",
  failed: "failed",
  rejected: "failed",
  received: "delivered",
  delivered: "delivered",
};

export const commandAckSchema = z.looseObject({
  message_id: z.union([z.string().min(1).max(64), z.number().int().transform(String)]),
  status: z.string().transform((s) => s.toLowerCase()).refine((s) => s in STATUS, {
    message: `must be one of ${Object.keys(STATUS).join(", ")}`,
  }),
  detail: z.unknown().optional(),
});

export type CommandAckPayload = z.infer<typeof commandAckSchema>;

export const commandAckJob = defineJob<CommandAckPayload>({
  type: "command_ack",
  schema: commandAckSchema,
  async handle(jobs, { store, metrics }) {
    // One batch, in arrival order ("received" then "ok" must land in that order), one commit.
    const acks: CommandAck[] = jobs.map((j) => {
      const { message_id: messageId, ...report } = j.payload;
      return {
        messageId,
        serialNo: j.serialNo,
        status: STATUS[j.payload.status]!,
        detail: report,
        at: j.receivedAt,
      };
    });
    const outcomes = await store.recordCommandAcks(acks);
    acks.forEach(({ messageId, serialNo, status }, i) => {
      const outcome = outcomes[i];
      if (outcome === "applied") metrics?.commands.inc({ status });
      else if (outcome === "wrong_machine") {
        log.warn("Ignored an ack from {serialNo} for command {messageId} sent to another machine", {
          serialNo,
          messageId,
        });
      } else if (outcome === "unknown") {
        log.warn("Ignored an ack from {serialNo} for unknown command {messageId}", { serialNo, messageId });
      } else {
        log.debug("Ack {status} for {messageId} came after the command was already {status}", {
          status,
          messageId,
        });
      }
    });
  },
});

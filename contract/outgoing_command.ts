/**
 * @module outgoing_command
 * The element of `mqtt_outgoing_commands` and the downlink payload on `machine/{target}/command`,
 * byte-compatible with seed 004 and a Laravel `MqttCommandService`:
 * `{"target": "M-001", "command": "dispense", "payload": {…}, "message_id": "MSG_…"}`, in that key
 * order. A producer may leave out `message_id` (the gateway then makes one) and may send PHP's
 * empty array `[]` as the payload (read as `{}`). The gateway's own API adds `"origin": "api"`
 * to the elements it pushes (an extension): its row is stored with it, so such an element with no
 * row is a request that failed, and is never published.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { COMMAND_NAME, MESSAGE_ID, SERIAL_NO } from "./identity.ts";
import { storableJsonObject } from "./storable.ts";

export const outgoingCommandSchema = z.looseObject({
  target: z.string().regex(SERIAL_NO, "is not a valid serial_no"),
  command: z.string().regex(COMMAND_NAME, "must be 1-64 of A-Z a-z 0-9 _ . : -"),
  // Stored in machine_commands.payload: what a JSON column cannot hold is dead-lettered, not retried.
  payload: z.union([
    storableJsonObject(),
    z.array(z.unknown()).max(0).transform(() => ({})),
    z.null().transform(() => ({})),
  ]).optional().transform((p) => p ?? {}),
  message_id: z.union([z.string(), z.number().int().transform(String)]).nullable().optional()
    .transform((v) => v === null || v === undefined || v === "" ? undefined : v)
    .refine((v) => v === undefined || MESSAGE_ID.test(v), "must be 1-64 of A-Z a-z 0-9 _ . : -"),
  origin: z.string().optional(),
});

export type OutgoingCommand = z.output<typeof outgoingCommandSchema>;

export interface CommandMessage {
  target: string;
  command: string;
  payload: Record<string, unknown>;
  message_id: string;
  /** Only on the queue elements the gateway's API pushes (`"api"`), never on the MQTT payload. */
  origin?: "api";
}

/** The message for a stored command (what the downlink publishes and the API queues). */
export function commandMessageOf(
  c: { serialNo: string; command: string; payload: Record<string, unknown>; messageId: string },
): CommandMessage {
  return { target: c.serialNo, command: c.command, payload: c.payload, message_id: c.messageId };
}

/**
 * Serialises with the contract's key order (the bytes the Go gateway of seed 004 sent); `origin`,
 * when set, comes last.
 */
export function encodeCommandMessage(m: CommandMessage): string {
  return JSON.stringify({
    target: m.target,
    command: m.command,
    payload: m.payload,
    message_id: m.message_id,
    origin: m.origin, // JSON.stringify leaves it out when undefined
  });
}

/** `MSG_` + milliseconds + 8 random hex digits: unique, and sorts by time like seed 004's ids. */
export function newMessageId(now = Date.now()): string {
  return `MSG_${now}${randomBytes(4).toString("hex")}`;
}

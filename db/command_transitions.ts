/**
 * @module command_transitions
 * The rule for a machine's ack, as a pure function: which state a command may move from on
 * `delivered`, `succeeded` or `failed`. MySQL applies a batch of acks by reading the rows once
 * (locked), running this rule in order, and writing each changed row once; SQLite's conditional
 * UPDATEs say the same in SQL, and the store conformance suite runs both on the same cases.
 */
import type { CommandAck, CommandAckOutcome, CommandStatus } from "./store.ts";

/** What the rule needs of a command. */
export interface AckState {
  serialNo: string;
  status: CommandStatus;
  sentAt: Date | null;
}

/**
 * Whether `ack` applies to a command in `state`: `delivered` from queued/sent; `succeeded` /
 * `failed` from queued/sent/delivered, and from `expired` when it had been published (the
 * machine's real outcome beats the timeout). Only the command's own target may ack it.
 */
export function ackOutcome(state: AckState | undefined, ack: CommandAck): CommandAckOutcome {
  if (!state) return "unknown";
  if (state.serialNo !== ack.serialNo) return "wrong_machine";
  const s = state.status;
  const applies = ack.status === "delivered"
    ? s === "queued" || s === "sent"
    : s === "queued" || s === "sent" || s === "delivered" || (s === "expired" && state.sentAt !== null);
  return applies ? "applied" : "stale";
}

/**
 * @module topics
 * The machine-side MQTT topics: `machine/{serial_no}/heartbeat|error|transaction|command/ack` up,
 * `machine/{serial_no}/command` down. Every topic string the gateway builds or parses comes from here.
 */
import { SERIAL_NO } from "./identity.ts";

/** Topic suffix after `machine/{serial}/` → job type. */
export const UPLINK_TYPES: Readonly<Record<string, string>> = {
  heartbeat: "heartbeat",
  error: "error",
  transaction: "transaction",
  "command/ack": "command_ack",
};

export type ParsedTopic = { serialNo: string; type: string } | { reason: "unknown_topic" | "bad_serial" };

/** `machine/M-001/heartbeat` → `{serialNo: "M-001", type: "heartbeat"}`. */
export function parseUplinkTopic(topic: string): ParsedTopic {
  const parts = topic.split("/");
  if (parts.length < 3 || parts[0] !== "machine") return { reason: "unknown_topic" };
  const type = UPLINK_TYPES[parts.slice(2).join("/")];
  if (!type) return { reason: "unknown_topic" };
  if (!SERIAL_NO.test(parts[1]!)) return { reason: "bad_serial" };
  return { serialNo: parts[1]!, type };
}

/** The uplink subscriptions, through `$share/{group}/` when a share group is set. */
export function uplinkFilters(shareGroup: string): string[] {
  const prefix = shareGroup ? `$share/${shareGroup}/` : "";
  return Object.keys(UPLINK_TYPES).map((suffix) => `${prefix}machine/+/${suffix}`);
}

/** The topics one machine publishes to. */
export function machineUplinkTopics(serialNo: string): string[] {
  return Object.keys(UPLINK_TYPES).map((suffix) => `machine/${serialNo}/${suffix}`);
}

/** Where the gateway publishes a machine's commands. */
export function commandTopic(serialNo: string): string {
  return `machine/${serialNo}/command`;
}

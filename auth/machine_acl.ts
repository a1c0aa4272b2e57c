/**
 * @module machine_acl
 * The topic policy, as pure functions (no I/O), shared by the EMQX HTTP hook, the embedded
 * broker and the Redis ACL entries the gateway writes for EMQX's Redis authorizer:
 *
 * - a machine (username = its serial_no) may publish only to its own uplink topics
 *   `machine/{serial}/heartbeat|error|transaction|command/ack`, and subscribe only to its own
 *   `machine/{serial}/command`; wildcards, `$share/…` and every other topic are denied;
 * - the gateway's own identity may publish and subscribe anywhere (it alone publishes commands);
 * - anything else is denied.
 */
import { SERIAL_NO } from "../contract/identity.ts";
import { commandTopic, machineUplinkTopics } from "../contract/topics.ts";
import type { MqttAction } from "./broker_auth.ts";

export interface MachineTopics {
  publish: string[];
  subscribe: string[];
}

/** The exact topics a machine may use; nothing else is allowed for it. */
export function machineTopics(serialNo: string): MachineTopics {
  return {
    publish: machineUplinkTopics(serialNo),
    subscribe: [commandTopic(serialNo)],
  };
}

/** Deny by default: true only for the gateway, or a machine on one of its own topics. */
export function isTopicAllowed(
  who: { username: string; gateway: boolean },
  action: MqttAction | string,
  topic: string,
): boolean {
  if (who.gateway) return true;
  if (!SERIAL_NO.test(who.username)) return false;
  const allowed = machineTopics(who.username);
  if (action === "publish") return allowed.publish.includes(topic);
  if (action === "subscribe") return allowed.subscribe.includes(topic);
  return false;
}

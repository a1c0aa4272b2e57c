/**
 * @module machine_acl
 * The topic policy, as pure functions (no I/O), shared by the EMQX HTTP hook, the embedded
 * broker and the Redis ACL entries the gateway writes for EMQX's Redis authorizer:
 *
 * - a machine (username = its serial_no) may publish only to its own uplink topics
 *   `machine/{serial}/heartbeat|error|transaction|command/ack`, and subscribe only to its own
 *   `machine/{serial}/command`; wildcards, `$share/…` and every other topic are denied;
 * - the gateway's own identity may publish and subscribe anywhere (it alone publishes commands);
 * - a local service (`MQTT_SERVICE_USERNAME`, e.g. the device service) may publish to and subscribe to
 *   topics under `mcs/events/` only (wildcards inside that prefix), never a machine's topics;
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

/** Where a local service's events live (seed 000's device service: `devices/events.ts`). */
export const SERVICE_TOPIC_PREFIX = "mcs/events/";

/** Deny by default: true only for the gateway, a service on its events, or a machine on its own topics. */
export function isTopicAllowed(
  who: { username: string; gateway: boolean; service?: boolean },
  action: MqttAction | string,
  topic: string,
): boolean {
  if (who.gateway) return true;
  if (who.service) {
    if (!topic.startsWith(SERVICE_TOPIC_PREFIX)) return false;
    if (action === "publish") return !/[#+]/.test(topic);
    return action === "subscribe";
  }
  if (!SERIAL_NO.test(who.username)) return false;
  const allowed = machineTopics(who.username);
  if (action === "publish") return allowed.publish.includes(topic);
  if (action === "subscribe") return allowed.subscribe.includes(topic);
  return false;
}

/**
 * @module mqtt_puback
 * The one place where the gateway reaches past mqtt.js's public API, to pipeline QoS 1 PUBACKs.
 * mqtt.js (pinned at 5.16.0 in deno.json) reads a connection's packets one at a time and sends a
 * QoS 1 PUBACK as soon as `handleMessage`'s callback runs, before it reads the next packet; there
 * is no public way to read on while the PUBACK waits for the message to be stored. So:
 *
 * - {@link HOLD_PUBACK}: `handleMessage`'s callback called with an error makes mqtt.js skip the
 *   PUBACK and go on to the next packet (`handlers/publish.js`, QoS 1 case; the error goes to the
 *   read loop's continuation, which ignores it). Used on MQTT 5 and 3.1.1 alike.
 * - {@link sendPubacks}: the PUBACK is then sent later through the client's private `_sendPacket`,
 *   exactly as mqtt.js sends its own.
 *
 * `mqtt_puback_test.ts` and `mqtt_connection_test.ts` cover both against a real broker, so an
 * mqtt.js upgrade that changes either fails the tests instead of losing or duplicating PUBACKs.
 */
import process from "node:process";
import type { MqttClient } from "mqtt";

/** Passed to `handleMessage`'s callback: "read on, the PUBACK is sent later by the gateway". */
export const HOLD_PUBACK: Error = new Error("PUBACK held back until the message is stored");

interface PrivateClient {
  _sendPacket(
    packet: { cmd: "puback"; messageId: number; reasonCode: number },
    cb?: (error?: Error) => void,
  ): void;
}

interface Corkable {
  cork(): void;
  uncork(): void;
}

const corked = new WeakSet<object>();

/**
 * Holds the stream's writes until the promise reactions queued now have run (`process.nextTick`
 * runs after them): the PUBACKs of one stored batch are settled one reaction at a time, and each
 * written alone would cost a system call (on a busy host, the largest cost of the uplink per
 * message). `setImmediate` would group more but, in Deno under load, runs late enough to halve
 * the uplink's rate (measured).
 */
function corkUntilNextTick(stream: unknown): void {
  const s = stream as Partial<Corkable> | null;
  if (!s || typeof s.cork !== "function" || typeof s.uncork !== "function" || corked.has(s)) return;
  corked.add(s);
  s.cork();
  process.nextTick(() => {
    corked.delete(s);
    s.uncork!();
  });
}

/**
 * Writes the PUBACKs for `messageIds` in order (coalesced with the others of this turn of the
 * event loop). Sends nothing and returns false when `stream` (the connection they arrived on) is
 * no longer the client's connected stream: mqtt.js would queue them for the next connection, where
 * the broker delivers the messages again anyway.
 */
export function sendPubacks(client: MqttClient, stream: unknown, messageIds: readonly number[]): boolean {
  if (!client.connected || client.stream !== stream || messageIds.length === 0) return false;
  corkUntilNextTick(stream);
  const send = (client as unknown as PrivateClient)._sendPacket.bind(client);
  for (const messageId of messageIds) send({ cmd: "puback", messageId, reasonCode: 0 });
  return true;
}

/**
 * @module sys_presence
 * Presence from an external broker that announces its clients' connects and disconnects on
 * `$SYS/brokers/{node}/clients/{clientid}/connected|disconnected` (EMQX does, see
 * `deploy/emqx/`; Mosquitto does not, so there heartbeat age decides). Turned on with
 * `MQTT_PRESENCE_EVENTS=true`. A machine is named by its username (its serial), else by its client
 * id up to the first `:`; the gateway's own connections are left out.
 */
import { SERIAL_NO } from "../contract/identity.ts";

/** What it needs of the gateway's connection (an `MqttConnection`). */
export interface SysPresenceConnection {
  onMessage(listener: (topic: string, payload: Uint8Array) => void): () => void;
  subscribe(filters: readonly string[], qos?: 0 | 1 | 2): Promise<void>;
}

export const SYS_PRESENCE_TOPICS = [
  "$SYS/brokers/+/clients/+/connected",
  "$SYS/brokers/+/clients/+/disconnected",
] as const;

export interface SysPresenceEvent {
  serial: string;
  connected: boolean;
  at: Date;
}

/** Reads one `$SYS` client event; null when it is not one or names no machine. */
export function parseSysPresence(
  topic: string,
  payload: Uint8Array,
  ignoreUsernames: ReadonlySet<string>,
): SysPresenceEvent | null {
  const m = /^\$SYS\/brokers\/[^/]+\/clients\/([^/]+)\/(connected|disconnected)$/.exec(topic);
  if (!m) return null;
  let body: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(new TextDecoder().decode(payload));
    if (parsed && typeof parsed === "object") body = parsed;
  } catch {
    // the topic alone still tells
  }
  const username = typeof body.username === "string" ? body.username : "";
  if (username && ignoreUsernames.has(username)) return null;
  const serial = username || m[1]!.split(":")[0]!;
  if (!SERIAL_NO.test(serial)) return null;
  const connected = m[2] === "connected";
  const ms = Number(connected ? body.connected_at : body.disconnected_at);
  return { serial, connected, at: Number.isFinite(ms) && ms > 0 ? new Date(ms) : new Date() };
}

/** Subscribes `connection` to the `$SYS` client events and hands each machine's to `onEvent`. */
export async function watchSysPresence(
  connection: SysPresenceConnection,
  onEvent: (e: SysPresenceEvent) => void,
  ignoreUsernames: ReadonlySet<string>,
): Promise<() => void> {
  const off = connection.onMessage((topic, payload) => {
    // Every message passes here: the cheap test first.
    if (topic.charCodeAt(0) !== 36 /* $ */) return;
    const event = parseSysPresence(topic, payload, ignoreUsernames);
    if (event) onEvent(event);
  });
  await connection.subscribe([...SYS_PRESENCE_TOPICS], 0);
  return off;
}

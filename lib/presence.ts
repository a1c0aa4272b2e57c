/**
 * @module presence
 * Which machines are online, for the API (`online`, `connected_at`, `disconnected_at`) and the
 * console. The broker says so where it can: the embedded broker's connect/disconnect, EMQX's
 * `$SYS/brokers/+/clients/+/connected|disconnected` events. Where it does not (Mosquitto, or a
 * machine connected before this process started), a machine is online while heard within the
 * silence window (`MACHINE_ONLINE_SECONDS`), and a sweep turns one silent for longer offline. Every
 * change is a `presence` event on the hub. Kept in memory: about 150 bytes per machine.
 */
import type { EventHub } from "./event_hub.ts";

export interface PresenceState {
  /** From the broker: true/false; undefined when the broker never said (heartbeat age decides). */
  connected?: boolean;
  connectedAt: Date | null;
  disconnectedAt: Date | null;
  lastHeardAt: Date | null;
  /** What the last change came from: "broker", "heartbeat" or "silence". */
  source: string;
  online: boolean;
}

export interface PresenceOptions {
  silenceMs: number;
  hub?: EventHub;
  now?: () => Date;
  /** How often the sweep looks for machines silent too long (default: a tenth of the silence, ≥ 1 s). */
  sweepMs?: number;
}

export class PresenceTracker {
  readonly #states = new Map<string, PresenceState>();
  readonly #o: PresenceOptions;
  readonly #now: () => Date;
  #timer?: ReturnType<typeof setInterval>;

  constructor(options: PresenceOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  get silenceMs(): number {
    return this.#o.silenceMs;
  }

  /** Starts the silence sweep; stop it with {@link close}. */
  start(): void {
    this.#timer ??= setInterval(
      () => this.sweep(),
      this.#o.sweepMs ?? Math.max(1000, Math.floor(this.#o.silenceMs / 10)),
    );
  }

  /** The broker says the machine connected (true) or went away (false). */
  brokerEvent(serial: string, connected: boolean, at = this.#now()): void {
    const s = this.#state(serial);
    s.connected = connected;
    if (connected) s.connectedAt = at;
    else s.disconnectedAt = at;
    this.#set(serial, s, connected, "broker", at);
  }

  /** A heartbeat (or any message) from the machine. */
  heard(serial: string, at: Date): void {
    const s = this.#state(serial);
    if (!s.lastHeardAt || at > s.lastHeardAt) s.lastHeardAt = at;
    // A machine heard from is online unless the broker has just said it left.
    if (s.connected !== false) this.#set(serial, s, true, "heartbeat", at);
  }

  /** What is known of a machine, or undefined (then only the database's last_heard_at tells). */
  get(serial: string): PresenceState | undefined {
    return this.#states.get(serial);
  }

  /**
   * Online by the broker when it told, else by heartbeat age: `lastHeardAt` (e.g. from the database)
   * within the silence window.
   */
  isOnline(serial: string, lastHeardAt: Date | null): boolean {
    const s = this.#states.get(serial);
    if (s?.connected !== undefined) return s.connected;
    const heard = Math.max(lastHeardAt?.getTime() ?? -Infinity, s?.lastHeardAt?.getTime() ?? -Infinity);
    return this.#now().getTime() - heard <= this.#o.silenceMs;
  }

  /** Marks offline every machine the broker did not vouch for and that is silent too long. */
  sweep(): void {
    const now = this.#now();
    for (const [serial, s] of this.#states) {
      if (!s.online || s.connected === true) continue;
      if (!s.lastHeardAt || now.getTime() - s.lastHeardAt.getTime() > this.#o.silenceMs) {
        this.#set(serial, s, false, "silence", now);
      }
    }
  }

  get size(): number {
    return this.#states.size;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #state(serial: string): PresenceState {
    let s = this.#states.get(serial);
    if (!s) {
      s = { connectedAt: null, disconnectedAt: null, lastHeardAt: null, source: "heartbeat", online: false };
      this.#states.set(serial, s);
    }
    return s;
  }

  #set(serial: string, s: PresenceState, online: boolean, source: string, at: Date): void {
    if (s.online === online) return;
    s.online = online;
    s.source = source;
    this.#o.hub?.emit({ type: "presence", serial, online, at: at.toISOString(), source });
  }
}

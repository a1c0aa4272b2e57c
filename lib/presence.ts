/**
 * @module presence
 * Which machines are online, for the API (`online`, `connected_at`, `disconnected_at`) and the
 * console. The broker says so where it can: the embedded broker's connect/disconnect, EMQX's
 * `$SYS/brokers/+/clients/+/connected|disconnected` events. Where it does not (Mosquitto, or a
 * machine connected before this process started), a machine is online while heard within the
 * silence window (`MACHINE_ONLINE_SECONDS`), and a sweep turns one silent for longer offline. Every
 * change is a `presence` event on the hub. Kept in memory: about 150 bytes per machine.
 *
 * With several gateway processes (the event relay, `app/event_relay.ts`) each process hands what it
 * learnt itself to `onLocal` (every broker event, every change by heartbeat or silence: rare, unlike
 * heartbeats) and applies what the others learnt with {@link PresenceTracker.applyRemote}, which
 * neither emits nor hands it on again. Broker events apply in the order of their time, whoever
 * delivers them first. The sweep then asks `lastHeard` (the database, which every worker writes)
 * before it calls a machine silent, since this process hears only its share of the heartbeats.
 */
import type { EventHub, PresenceEvent, PresenceSource } from "./event_hub.ts";

export interface PresenceState {
  /** From the broker: true/false; undefined when the broker never said (heartbeat age decides). */
  connected?: boolean;
  connectedAt: Date | null;
  disconnectedAt: Date | null;
  lastHeardAt: Date | null;
  /** What the last change came from. */
  source: PresenceSource;
  online: boolean;
}

/** When each of these machines was last heard (a missing or null entry: never). */
export type LastHeardLookup = (serials: string[]) => Promise<Map<string, Date | null>>;

export interface PresenceOptions {
  silenceMs: number;
  hub?: EventHub;
  now?: () => Date;
  /** How often the sweep looks for machines silent too long (default: a tenth of the silence, ≥ 1 s). */
  sweepMs?: number;
  /** Every broker event and every change this process learnt itself (not those applied from elsewhere). */
  onLocal?: (event: PresenceEvent) => void;
}

export interface SweepOptions {
  /** Asked before a machine is called silent; on failure the tracker's own view decides. */
  lastHeard?: LastHeardLookup;
}

export class PresenceTracker {
  readonly #states = new Map<string, PresenceState>();
  readonly #o: PresenceOptions;
  readonly #now: () => Date;
  #lastHeard?: LastHeardLookup;
  #timer?: ReturnType<typeof setInterval>;
  #sweeping = false;

  constructor(options: PresenceOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  get silenceMs(): number {
    return this.#o.silenceMs;
  }

  /** Starts the silence sweep; stop it with {@link close}. */
  start(options: SweepOptions = {}): void {
    this.#lastHeard = options.lastHeard;
    this.#timer ??= setInterval(
      () => void this.sweep(),
      this.#o.sweepMs ?? Math.max(1000, Math.floor(this.#o.silenceMs / 10)),
    );
  }

  /** The broker says the machine connected (true) or went away (false) at `at`. */
  brokerEvent(serial: string, connected: boolean, at = this.#now()): void {
    if (!this.#applyBroker(serial, connected, at)) return;
    const s = this.#states.get(serial)!;
    this.#set(serial, s, connected, "broker", at);
    this.#o.onLocal?.({
      type: "presence",
      serial,
      online: connected,
      at: at.toISOString(),
      source: "broker",
    });
  }

  /** A heartbeat (or any message) from the machine. */
  heard(serial: string, at: Date): void {
    const s = this.#state(serial);
    if (!s.lastHeardAt || at > s.lastHeardAt) s.lastHeardAt = at;
    // A machine heard from is online unless the broker has just said it left.
    if (s.connected !== false) this.#set(serial, s, true, "heartbeat", at);
  }

  /**
   * What another gateway process learnt (a `presence` event it handed to `onLocal`, or one of its
   * heartbeats): applied to the state without an event or `onLocal`, so it is neither shown twice
   * nor passed back. True when it changed whether the machine is online here, i.e. when this
   * process's listeners have not heard of it yet.
   */
  applyRemote(event: PresenceEvent | { type: "heartbeat"; serial: string; at: string }): boolean {
    const at = new Date(event.at);
    if (Number.isNaN(at.getTime())) return false;
    if (event.type === "heartbeat") {
      const s = this.#states.get(event.serial);
      if (s && (!s.lastHeardAt || at > s.lastHeardAt)) s.lastHeardAt = at;
      return false;
    }
    const { serial } = event;
    let online: boolean;
    if (event.source === "broker") {
      if (!this.#applyBroker(serial, event.online, at)) return false;
      online = event.online;
    } else if (event.online) {
      const s = this.#state(serial);
      if (!s.lastHeardAt || at > s.lastHeardAt) s.lastHeardAt = at;
      if (s.connected === false) return false;
      online = true;
    } else {
      // Called silent elsewhere: agreed unless the broker vouches for it. Should this process hear
      // the machine again, its next heartbeat turns it online everywhere.
      if (this.#states.get(serial)?.connected === true) return false;
      online = false;
    }
    const s = this.#state(serial);
    if (s.online === online) return false;
    s.online = online;
    s.source = event.source;
    return true;
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

  /**
   * Marks offline every machine the broker did not vouch for and that is silent too long (asking
   * `lastHeard`, when {@link start} was given one, first). Without a lookup it is done on return.
   */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const now = this.#now();
      let silent = [...this.#states].filter(([, s]) => this.#silent(s, now)).map(([serial]) => serial);
      if (silent.length > 0 && this.#lastHeard) {
        try {
          const heard = await this.#lastHeard(silent);
          for (const serial of silent) {
            const at = heard.get(serial);
            const s = this.#states.get(serial);
            if (s && at && (!s.lastHeardAt || at > s.lastHeardAt)) s.lastHeardAt = at;
          }
        } catch {
          // the database cannot say: this process's own view decides, as without the lookup
        }
        silent = silent.filter((serial) => {
          const s = this.#states.get(serial);
          return s !== undefined && this.#silent(s, now);
        });
      }
      for (const serial of silent) this.#set(serial, this.#states.get(serial)!, false, "silence", now);
    } finally {
      this.#sweeping = false;
    }
  }

  get size(): number {
    return this.#states.size;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #silent(s: PresenceState, now: Date): boolean {
    if (!s.online || s.connected === true) return false;
    return !s.lastHeardAt || now.getTime() - s.lastHeardAt.getTime() > this.#o.silenceMs;
  }

  /**
   * Records a broker event unless one newer is known (`$SYS` events of two EMQX nodes, or the same
   * event relayed from another process, may arrive out of order). False when it was older.
   */
  #applyBroker(serial: string, connected: boolean, at: Date): boolean {
    const s = this.#state(serial);
    const latest = Math.max(s.connectedAt?.getTime() ?? -Infinity, s.disconnectedAt?.getTime() ?? -Infinity);
    if (at.getTime() < latest) return false;
    s.connected = connected;
    if (connected) s.connectedAt = at;
    else s.disconnectedAt = at;
    return true;
  }

  #state(serial: string): PresenceState {
    let s = this.#states.get(serial);
    if (!s) {
      s = { connectedAt: null, disconnectedAt: null, lastHeardAt: null, source: "heartbeat", online: false };
      this.#states.set(serial, s);
    }
    return s;
  }

  /** A change this process learnt itself: an event on the hub, and handed to `onLocal`. */
  #set(serial: string, s: PresenceState, online: boolean, source: PresenceSource, at: Date): void {
    if (s.online === online) return;
    s.online = online;
    s.source = source;
    const event: PresenceEvent = { type: "presence", serial, online, at: at.toISOString(), source };
    this.#o.hub?.emit(event);
    // A broker event goes to onLocal whether or not it changed `online` (brokerEvent sends it).
    if (source !== "broker") this.#o.onLocal?.(event);
  }
}

/**
 * @module event_hub
 * In-process live events for the operator console (and anything else in the process that wants to
 * follow the fleet): heartbeats, errors, sales, command transitions, presence changes. Producers call
 * {@link EventHub.emit} after their write is stored; subscribers get the events in batches every
 * `flushMs`. It costs the producers nothing measurable: while nobody listens `emit` returns at once,
 * and with subscribers a burst is coalesced (the last heartbeat per machine; at most `maxPerFlush`
 * of the other kinds, the rest counted as `dropped`), so one flush is one small message however hot
 * the uplink runs. Nothing here reads a database.
 *
 * With several gateway processes the event relay (`app/event_relay.ts`) widens "someone listens" to
 * the fleet: it sets {@link EventHub.watchedElsewhere} while a process elsewhere has a listener,
 * {@link EventHub.tap}s this process's batches to publish them, and hands the other processes'
 * batches to the local listeners with {@link EventHub.deliver} (never to a tap, so nothing is
 * passed on twice).
 */

export type HubEvent =
  | { type: "heartbeat"; serial: string; at: string; temperature: number | null; page: number | null }
  | { type: "error"; serial: string; code: string; level: string; message: string; at: string }
  | { type: "sale"; serial: string; slot: number; quantity: number; amount: number; at: string }
  | { type: "command"; status: string; ids: string[]; serials: string[] }
  | { type: "presence"; serial: string; online: boolean; at: string; source: PresenceSource };

/** What a presence change came from: the broker's word, a heartbeat, or silence too long. */
export type PresenceSource = "broker" | "heartbeat" | "silence";

export type PresenceEvent = Extract<HubEvent, { type: "presence" }>;

export interface HubBatch {
  events: HubEvent[];
  /** Events left out of this batch by the cap (the console then refreshes instead). */
  dropped: number;
}

export type HubListener = (batch: HubBatch) => void;

export interface EventHubOptions {
  flushMs?: number;
  maxPerFlush?: number;
}

export class EventHub {
  readonly #listeners = new Set<HubListener>();
  readonly #taps = new Set<HubListener>();
  readonly #listening = new Set<(listening: boolean) => void>();
  readonly #flushMs: number;
  readonly #max: number;
  /** Latest heartbeat per machine since the last flush. */
  #heartbeats = new Map<string, HubEvent>();
  #others: HubEvent[] = [];
  #dropped = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #elsewhere = false;
  #closed = false;

  constructor(options: EventHubOptions = {}) {
    this.#flushMs = options.flushMs ?? 500;
    this.#max = options.maxPerFlush ?? 200;
  }

  /**
   * True while someone listens, here or (with the relay) in another process of the fleet:
   * producers may skip building events otherwise.
   */
  get active(): boolean {
    return !this.#closed && (this.#listeners.size > 0 || this.#elsewhere);
  }

  /** This process's listeners (taps are not listeners). */
  get listeners(): number {
    return this.#listeners.size;
  }

  /** Set by the relay while a listener in another process wants this process's events too. */
  get watchedElsewhere(): boolean {
    return this.#elsewhere;
  }

  set watchedElsewhere(value: boolean) {
    this.#elsewhere = value;
    if (!this.active) this.#reset();
  }

  /**
   * Whether an event of `type` (a heartbeat: of machine `serial`) would be kept in the batch now; a
   * `false` counts it as dropped. Lets a producer skip building what {@link emit} would only count:
   * in a burst most events of a flush are over the cap.
   */
  admits(type: HubEvent["type"], serial?: string): boolean {
    if (!this.active) return false;
    const full = type === "heartbeat"
      ? this.#heartbeats.size >= this.#max && !this.#heartbeats.has(serial ?? "")
      : this.#others.length >= this.#max;
    if (full) this.#dropped++;
    return !full;
  }

  emit(event: HubEvent): void {
    if (!this.active) return;
    if (event.type === "heartbeat") {
      if (this.#heartbeats.size >= this.#max && !this.#heartbeats.has(event.serial)) this.#dropped++;
      else this.#heartbeats.set(event.serial, event);
    } else if (this.#others.length >= this.#max) this.#dropped++;
    else this.#others.push(event);
    this.#timer ??= setTimeout(() => this.#flush(), this.#flushMs);
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: HubListener): () => void {
    if (this.#closed) return () => {};
    const first = this.#listeners.size === 0;
    this.#listeners.add(listener);
    if (first) this.#notify(true);
    return () => {
      if (!this.#listeners.delete(listener) || this.#listeners.size > 0) return;
      if (!this.active) this.#reset();
      this.#notify(false);
    };
  }

  /**
   * `fn` sees every batch made here (not those {@link deliver}ed), without counting as a listener:
   * the relay publishes them. Returns the function that removes it.
   */
  tap(fn: HubListener): () => void {
    this.#taps.add(fn);
    return () => void this.#taps.delete(fn);
  }

  /** `fn(true)` when this process gets its first listener, `fn(false)` when its last one leaves. */
  onListening(fn: (listening: boolean) => void): () => void {
    this.#listening.add(fn);
    return () => void this.#listening.delete(fn);
  }

  /** Hands a batch made in another process to this process's listeners (not to the taps). */
  deliver(batch: HubBatch): void {
    if (this.#closed) return;
    this.#send(this.#listeners, batch);
  }

  /** Drops pending events, listeners and taps; idempotent. */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#taps.clear();
    this.#listening.clear();
    this.#reset();
  }

  #notify(listening: boolean): void {
    for (const fn of [...this.#listening]) {
      try {
        fn(listening);
      } catch {
        // the relay's own failure; the listener is added or removed all the same
      }
    }
  }

  #reset(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#heartbeats = new Map();
    this.#others = [];
    this.#dropped = 0;
  }

  #flush(): void {
    this.#timer = undefined;
    const batch: HubBatch = {
      events: [...this.#heartbeats.values(), ...this.#others],
      dropped: this.#dropped,
    };
    this.#heartbeats = new Map();
    this.#others = [];
    this.#dropped = 0;
    if (batch.events.length === 0 && batch.dropped === 0) return;
    this.#send(this.#listeners, batch);
    this.#send(this.#taps, batch);
  }

  #send(to: Set<HubListener>, batch: HubBatch): void {
    for (const listener of [...to]) {
      try {
        listener(batch);
      } catch {
        // a listener's failure (a closed stream) is its own; the others still get the batch
      }
    }
  }
}

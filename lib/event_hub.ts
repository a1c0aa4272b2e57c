/**
 * @module event_hub
 * In-process live events for the operator console (and anything else in the process that wants to
 * follow the fleet): heartbeats, errors, sales, command transitions, presence changes. Producers call
 * {@link EventHub.emit} after their write is stored; subscribers get the events in batches every
 * `flushMs`. It costs the producers nothing measurable: with no subscriber `emit` returns at once,
 * and with subscribers a burst is coalesced (the last heartbeat per machine; at most `maxPerFlush`
 * of the other kinds, the rest counted as `dropped`), so one flush is one small message however hot
 * the uplink runs. Nothing here reads a database.
 */

export type HubEvent =
  | { type: "heartbeat"; serial: string; at: string; temperature: number | null; page: number | null }
  | { type: "error"; serial: string; code: string; level: string; message: string; at: string }
  | { type: "sale"; serial: string; slot: number; quantity: number; amount: number; at: string }
  | { type: "command"; status: string; ids: string[]; serials: string[] }
  | { type: "presence"; serial: string; online: boolean; at: string; source: string };

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
  readonly #flushMs: number;
  readonly #max: number;
  /** Latest heartbeat per machine since the last flush. */
  #heartbeats = new Map<string, HubEvent>();
  #others: HubEvent[] = [];
  #dropped = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;

  constructor(options: EventHubOptions = {}) {
    this.#flushMs = options.flushMs ?? 500;
    this.#max = options.maxPerFlush ?? 200;
  }

  /** True while someone listens: producers may skip building events otherwise. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  emit(event: HubEvent): void {
    if (this.#listeners.size === 0 || this.#closed) return;
    if (event.type === "heartbeat") {
      if (this.#heartbeats.size >= this.#max && !this.#heartbeats.has(event.serial)) this.#dropped++;
      else this.#heartbeats.set(event.serial, event);
    } else if (this.#others.length >= this.#max) this.#dropped++;
    else this.#others.push(event);
    this.#timer ??= setTimeout(() => this.#flush(), this.#flushMs);
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: HubListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#reset();
    };
  }

  /** Drops pending events and listeners; idempotent. */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#reset();
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
    for (const listener of [...this.#listeners]) {
      try {
        listener(batch);
      } catch {
        // a listener's failure (a closed stream) is its own; the others still get the batch
      }
    }
  }
}

/**
 * @module publish_gate
 * Bounds the PUBLISH packets an in-process broker holds between reading them and handing them to
 * every subscriber. aedes acknowledges a QoS 1 message before routing it and reads a client's next
 * packets as soon as the last ones are routed, so when the subscriber (the gateway's uplink) is
 * slower than the machines, every machine's in-flight window waits parsed in the broker's queue:
 * 2,000 machines × 10 in flight were 20,000 messages and 30-40 MB of V8 heap, most of the embedded
 * mode's RSS above 200 MB. The gate counts the publishes in the broker; from `high` on it closes,
 * and the readers that want to read more wait (their bytes stay in the kernel's socket buffers and
 * the machines' own windows) until the count is down to `low`. Then they read again one by one, in
 * the order they came, while the gate stays open: a reader whose read brings the count back to
 * `high` closes it again before the next one reads.
 *
 * The gate knows nothing of MQTT: `enter`/`leave` a message, `defer` a reader's next read.
 */

export interface PublishGateOptions {
  /** Publishes in the broker at which readers stop reading. */
  high: number;
  /** Publishes in the broker at which they start again; default `high / 2`. */
  low?: number;
}

export class PublishGate {
  readonly high: number;
  readonly low: number;
  /** Message → the reader it came from. */
  readonly #inside = new Map<object, object>();
  /** Reader → its messages inside. */
  readonly #byReader = new Map<object, Set<object>>();
  /** Readers waiting to read, first come first served, each with its postponed reads in order. */
  readonly #waiting = new Map<object, (() => void)[]>();
  #closed = false;
  #pumping = false;
  #peak = 0;
  #deferrals = 0;

  constructor(options: PublishGateOptions) {
    this.high = Math.max(1, Math.floor(options.high));
    this.low = Math.min(this.high - 1, Math.max(0, Math.floor(options.low ?? this.high / 2)));
  }

  /** Publishes in the broker now. */
  get size(): number {
    return this.#inside.size;
  }

  /** The most publishes ever in the broker at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Reads postponed so far. */
  get deferrals(): number {
    return this.#deferrals;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Readers waiting to read. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** A message of `reader` entered the broker. */
  enter(message: object, reader: object): void {
    if (this.#inside.has(message)) return;
    this.#inside.set(message, reader);
    let mine = this.#byReader.get(reader);
    if (!mine) this.#byReader.set(reader, mine = new Set());
    mine.add(message);
    if (this.#inside.size > this.#peak) this.#peak = this.#inside.size;
    if (this.#inside.size >= this.high) this.#closed = true;
  }

  /** The message has reached every subscriber (or was dropped); unknown messages are ignored. */
  leave(message: object): void {
    const reader = this.#inside.get(message);
    if (reader === undefined) return;
    this.#inside.delete(message);
    const mine = this.#byReader.get(reader);
    mine?.delete(message);
    if (mine?.size === 0) this.#byReader.delete(reader);
    this.#maybeOpen();
  }

  /**
   * `read` now if the gate is open and `reader` has nothing postponed, else once the gate opens
   * (after the reader's earlier postponed reads).
   */
  read(reader: object, read: () => void): void {
    const queued = this.#waiting.get(reader);
    if (queued) {
      queued.push(read);
      this.#deferrals++;
      return;
    }
    if (!this.#closed && this.#waiting.size === 0) {
      read();
      return;
    }
    this.#waiting.set(reader, [read]);
    this.#deferrals++;
    this.#maybeOpen();
  }

  /** The reader is gone: its messages no longer count, its postponed reads are dropped. */
  forget(reader: object): void {
    this.#waiting.delete(reader);
    const mine = this.#byReader.get(reader);
    if (mine) {
      for (const message of mine) this.#inside.delete(message);
      this.#byReader.delete(reader);
    }
    this.#maybeOpen();
  }

  #maybeOpen(): void {
    if (this.#closed && this.#inside.size <= this.low) this.#closed = false;
    if (!this.#closed && this.#waiting.size > 0 && !this.#pumping) {
      this.#pumping = true;
      // Not inside the caller's callback (a delivery's completion): on a fresh stack.
      queueMicrotask(() => this.#pump());
    }
  }

  /** Lets waiting readers read, oldest first, until the gate closes again. */
  #pump(): void {
    try {
      while (!this.#closed) {
        const next = this.#waiting.entries().next();
        if (next.done) break;
        const [reader, reads] = next.value;
        this.#waiting.delete(reader);
        for (let i = 0; i < reads.length; i++) {
          if (this.#closed) {
            // Keep the rest for later, still in order, behind the readers already waiting.
            this.#waiting.set(reader, reads.slice(i));
            break;
          }
          reads[i]!();
        }
      }
    } finally {
      this.#pumping = false;
    }
  }
}

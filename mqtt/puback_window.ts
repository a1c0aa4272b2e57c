/**
 * @module puback_window
 * The QoS 1 PUBACKs of one MQTT connection, held back until their messages are settled (stored)
 * and then sent in the order the PUBLISHes arrived, as MQTT 3.1.1 §4.6 and MQTT 5 §4.6 require.
 * Messages are handed on at once, so the next one is handled while earlier ones are still being
 * stored (pipelining); at most `limit` may wait unacknowledged, and once that many do, the next
 * message waits (`add`'s `next` is held) until the oldest is acknowledged, so memory stays bounded.
 * After `close()` (connection lost or shut down) nothing more is sent: whatever was not
 * acknowledged by then is delivered again by the broker.
 */

interface Entry {
  readonly messageId: number;
  settled: boolean;
}

export class PubackWindow {
  #entries: Entry[] = [];
  #head = 0;
  #closed = false;
  #waiting?: () => void;

  /** `send` gets the message ids whose PUBACKs are due, oldest first. */
  constructor(readonly limit: number, readonly send: (messageIds: number[]) => void) {
    if (!(limit >= 1)) throw new RangeError(`PUBACK window limit must be at least 1, got ${limit}`);
  }

  /** Messages received and not acknowledged yet. */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Registers a message in arrival order and returns the function that settles it (idempotent).
   * `next` (let the connection read on) runs at once while fewer than `limit` wait, otherwise as
   * soon as the oldest are acknowledged, or on `close()`.
   */
  add(messageId: number, next: () => void): () => void {
    const entry: Entry = { messageId, settled: false };
    if (this.#closed) {
      next();
      return () => {};
    }
    this.#entries.push(entry);
    if (this.size < this.limit) next();
    else this.#waiting = next;
    return () => {
      if (entry.settled) return;
      entry.settled = true;
      this.#drain();
    };
  }

  /** Sends nothing more; a held `next` runs so that the connection's reader is not left hanging. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#entries = [];
    this.#head = 0;
    this.#resume();
  }

  #drain(): void {
    if (this.#closed) return;
    const due: number[] = [];
    while (this.#head < this.#entries.length && this.#entries[this.#head]!.settled) {
      due.push(this.#entries[this.#head++]!.messageId);
    }
    if (due.length === 0) return;
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    this.send(due);
    if (this.size < this.limit) this.#resume();
  }

  #resume(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }
}

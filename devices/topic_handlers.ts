/**
 * @module topic_handlers
 * The seed's message handler (`mqtt_handler.register_handler("custom/topic", fn)`): code registers a
 * function for an MQTT topic filter, wildcards included (`+` one level, `#` the rest), and every
 * message whose topic matches is given to every matching handler. A handler that throws (or whose
 * promise rejects) is logged and counted; the others still run.
 *
 * Delivery is at least once: a QoS 1 message can come again, and a broker may deliver a message once
 * per matching subscription when filters overlap (`custom/topic` and `custom/#` both subscribed), so
 * handlers should be idempotent.
 */
import { getLogger } from "@logtape/logtape";
import { ValidationError } from "../lib/errors.ts";

const log = getLogger(["gateway", "devices", "handlers"]);

/** What a handler is given: the topic, the payload as text, and the payload parsed as JSON when it is JSON. */
export interface TopicMessage {
  topic: string;
  payload: string;
  /** The parsed payload, or undefined when the payload is not JSON. */
  json: unknown;
}

export type TopicHandler = (topic: string, payload: string, message: TopicMessage) => void | Promise<void>;

/** Throws a {@link ValidationError} unless `filter` is a valid MQTT subscription filter. */
export function validateTopicFilter(filter: string): void {
  if (filter.length === 0) throw new ValidationError("A topic filter cannot be empty");
  if (filter.includes("\u0000")) {
    throw new ValidationError(`Topic filter ${JSON.stringify(filter)} contains NUL`);
  }
  const levels = filter.split("/");
  levels.forEach((level, i) => {
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      throw new ValidationError(`Topic filter ${JSON.stringify(filter)}: "#" must be a whole last level`);
    }
    if (level.includes("+") && level !== "+") {
      throw new ValidationError(`Topic filter ${JSON.stringify(filter)}: "+" must be a whole level`);
    }
  });
}

/**
 * MQTT matching of a topic name against a filter (MQTT 3.1.1 §4.7): `+` matches exactly one level
 * (an empty one too), `#` matches the parent level and everything below it, and a wildcard in the
 * first level does not match topics starting with `$`. A `$share/<group>/` prefix is ignored.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const shared = /^\$share\/[^/]+\/(.+)$/.exec(filter);
  const f = (shared ? shared[1]! : filter).split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when every topic that `inner` matches is matched by `outer` too (so one subscription is enough). */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split("/");
  const i = inner.split("/");
  for (let k = 0; k < o.length; k++) {
    if (o[k] === "#") return !(k === 0 && inner.startsWith("$"));
    if (k >= i.length || i[k] === "#") return false;
    if (o[k] === "+") {
      if (k === 0 && inner.startsWith("$")) return false;
      continue;
    }
    if (o[k] !== i[k]) return false;
  }
  return o.length === i.length;
}

export class TopicHandlers {
  readonly #entries: { filter: string; handler: TopicHandler }[] = [];
  readonly #decoder = new TextDecoder();
  #received = 0;
  #handled = 0;
  #failures = 0;
  #pending = new Set<Promise<void>>();

  /** `onNewFilter` (the device service subscribes with it) is called the first time a filter is registered. */
  constructor(readonly onNewFilter?: (filter: string) => void) {}

  /** Adds `handler` for `filter` (validated first). Returns a function that removes it. */
  register(filter: string, handler: TopicHandler): () => void {
    validateTopicFilter(filter);
    const entry = { filter, handler };
    const isNew = !this.#entries.some((e) => e.filter === filter);
    this.#entries.push(entry);
    if (isNew) this.onNewFilter?.(filter);
    return () => {
      const i = this.#entries.indexOf(entry);
      if (i >= 0) this.#entries.splice(i, 1);
    };
  }

  /** The distinct filters that have a handler. */
  filters(): string[] {
    return [...new Set(this.#entries.map((e) => e.filter))];
  }

  /**
   * Gives the message to every matching handler, in registration order. Returns the number of
   * handlers called; their promises are awaited by {@link settled}, never by the caller.
   */
  dispatch(topic: string, payload: Uint8Array | string): number {
    const text = typeof payload === "string" ? payload : this.#decoder.decode(payload);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const message: TopicMessage = { topic, payload: text, json };
    let called = 0;
    this.#received++;
    // A copy: a handler may register or remove handlers while we go through them.
    for (const { filter, handler } of [...this.#entries]) {
      if (!topicMatches(filter, topic)) continue;
      called++;
      try {
        const result = handler(topic, text, message);
        if (result instanceof Promise) {
          const p = result.then(() => void this.#handled++, (error) => this.#failed(filter, topic, error))
            .finally(() => this.#pending.delete(p));
          this.#pending.add(p);
        } else {
          this.#handled++;
        }
      } catch (error) {
        this.#failed(filter, topic, error);
      }
    }
    return called;
  }

  /** Resolves once every asynchronous handler started so far has finished. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  stats(): { filters: string[]; received: number; handled: number; failures: number } {
    return {
      filters: this.filters(),
      received: this.#received,
      handled: this.#handled,
      failures: this.#failures,
    };
  }

  #failed(filter: string, topic: string, error: unknown): void {
    this.#failures++;
    log.error("The handler for {filter} failed on {topic}: {error}", { filter, topic, error });
  }
}

/**
 * @module event_relay
 * Live events and presence for the whole fleet when several gateway processes share one Redis
 * (docs/scaling.md): without it a console behind a load balancer sees only what its own process
 * handled. Each process publishes on `{Q}:events` (`queue/redis/redis_event_channel.ts`, message
 * format in `contract/relay_message.ts`), skips its own messages and hands the others' to its
 * local listeners and presence tracker.
 *
 * - **Events only while someone watches.** A process with a listener (console, `/api/v1/events`)
 *   keeps an entry in `{Q}:events:watchers`; every process reads that set every `watchMs` and sets
 *   its hub's `watchedElsewhere` while another process watches. Only then do its producers build
 *   events and does it publish its batches (one PUBLISH per 500 ms flush at most). With nobody
 *   watching anywhere, the cost is one small script every `watchMs` per process.
 * - **Presence always.** The changes a process learnt itself (broker events, online by heartbeat,
 *   offline by silence: per machine, not per heartbeat) are published whether or not anyone watches,
 *   so `GET /api/v1/machines` agrees on every process. A receiver applies them without emitting or
 *   passing them on (no ping-pong), and shows one to its listeners only when it changed its state,
 *   so a change several processes saw (a `$SYS` event every gateway gets) is shown once.
 * - Remote heartbeats only freshen the tracker's last-heard time; the sweep asks the database
 *   before it calls a machine silent (`lib/presence.ts`).
 */
import { getLogger } from "@logtape/logtape";
import { encodeRelayMessage, parseRelayMessage, type RelayMessage } from "../contract/relay_message.ts";
import type { EventHub, HubBatch, HubEvent, PresenceEvent } from "../lib/event_hub.ts";
import { LogThrottle } from "../lib/log_throttle.ts";
import type { Metrics } from "../lib/metrics.ts";
import type { PresenceTracker } from "../lib/presence.ts";
import type { RedisEventChannel } from "../queue/redis/redis_event_channel.ts";

const log = getLogger(["gateway", "events"]);

/** What the relay needs of its channel (a {@link RedisEventChannel}). */
export type EventChannel = Pick<RedisEventChannel, "channel" | "open" | "publish" | "watchers" | "close">;

export interface EventRelayOptions {
  hub: EventHub;
  presence: PresenceTracker;
  channel: EventChannel;
  /** This process in the messages and the watchers' set: unique per process run. */
  origin: string;
  metrics?: Metrics;
  /** How often the watchers' set is read and this process's entry renewed (default 2 s; TTL 3×). */
  watchMs?: number;
  /** How long presence changes wait to be published together (default 500 ms, the hub's flush). */
  flushMs?: number;
  /** While watched, a process publishes at least this often (default 10 s), so the others count it. */
  keepaliveMs?: number;
}

export interface RelayStatus {
  channel: string;
  /** Processes with a listener now (this one included). */
  watchers: number;
  /** True while this process's events are published (someone elsewhere listens). */
  publishing: boolean;
  /** Processes heard from in the last 30 s while watched, this one included. */
  processes: number;
}

/** Presence changes per message; a reconnect storm is split over several. */
const FACTS_PER_MESSAGE = 5000;
/** Presence changes kept while Redis is away (the oldest go first). */
const MAX_PENDING_FACTS = 50_000;
const SEEN_MS = 30_000;

export class EventRelay {
  readonly #o: Required<Omit<EventRelayOptions, "metrics">> & { metrics?: Metrics };
  readonly #seen = new Map<string, number>();
  readonly #throttle = new LogThrottle(30_000);
  readonly #offs: (() => void)[] = [];
  #facts: PresenceEvent[] = [];
  #factTimer?: ReturnType<typeof setTimeout>;
  #watchTimer?: ReturnType<typeof setInterval>;
  #watchers = 0;
  /** Another process listens: publish this one's batches. */
  #othersWatch = false;
  /** This process's entry is in the set. */
  #inSet = false;
  #lastWatchOk = 0;
  #lastPublish = 0;
  #watching?: Promise<void>;
  #watchAgain = false;
  #closed = false;
  #closing?: Promise<void>;

  constructor(options: EventRelayOptions) {
    this.#o = { watchMs: 2000, flushMs: 500, keepaliveMs: 10_000, ...options };
  }

  get #ttlMs(): number {
    return this.#o.watchMs * 3;
  }

  /**
   * Subscribes and starts reading the watchers' set. Resolves once subscribed; rejects when `signal`
   * aborts first, and the relay then goes on as soon as Redis answers.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const { hub, channel } = this.#o;
    if (this.#closed) return;
    // Connects both connections now; ioredis keeps trying (and subscribes) should Redis be away.
    const opened = channel.open((text) => this.#receive(text), signal);
    this.#offs.push(hub.tap((batch) => this.#publishBatch(batch)));
    // A console opening here starts the others' events now, not at the next read.
    this.#offs.push(hub.onListening(() => void this.#watch()));
    this.#watchTimer = setInterval(() => void this.#watch(), this.#o.watchMs);
    await opened;
    await this.#watch();
  }

  /** A presence change this process learnt itself (the tracker's `onLocal`): published always. */
  presence(event: PresenceEvent): void {
    if (this.#closed) return;
    if (this.#facts.length >= MAX_PENDING_FACTS) this.#facts.shift();
    this.#facts.push(event);
    this.#factTimer ??= setTimeout(() => this.#publish(), this.#o.flushMs);
  }

  status(): RelayStatus {
    const now = Date.now();
    let processes = 1;
    for (const [origin, at] of this.#seen) {
      if (now - at <= SEEN_MS) processes++;
      else this.#seen.delete(origin);
    }
    return {
      channel: this.#o.channel.channel,
      watchers: this.#watchers,
      publishing: this.#othersWatch,
      processes,
    };
  }

  /** Stops publishing, leaves the watchers' set and closes the channel; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearInterval(this.#watchTimer);
      clearTimeout(this.#factTimer);
      for (const off of this.#offs.splice(0)) off();
      this.#o.hub.watchedElsewhere = false;
      await this.#watching?.catch(() => {});
      if (this.#inSet) {
        await this.#o.channel.watchers(this.#o.origin, "leave", this.#ttlMs).catch(() => {});
      }
      await this.#o.channel.close();
    })();
    return this.#closing;
  }

  /** Reads the watchers' set (renewing or removing this process's entry); one run at a time. */
  #watch(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#watching) {
      this.#watchAgain = true;
      return this.#watching;
    }
    this.#watching = (async () => {
      do {
        this.#watchAgain = false;
        await this.#readWatchers();
      } while (this.#watchAgain && !this.#closed);
    })().finally(() => this.#watching = undefined);
    return this.#watching;
  }

  async #readWatchers(): Promise<void> {
    const { hub, channel, origin } = this.#o;
    const listening = hub.listeners > 0;
    const mode = listening ? "watch" : this.#inSet ? "leave" : "read";
    try {
      const n = await channel.watchers(origin, mode, this.#ttlMs);
      if (this.#closed) return;
      this.#inSet = listening;
      this.#watchers = n;
      this.#othersWatch = n - (listening ? 1 : 0) > 0;
      this.#lastWatchOk = Date.now();
    } catch (error) {
      // Redis away: keep what was known for a TTL, then stop building events for nobody.
      if (Date.now() - this.#lastWatchOk > this.#ttlMs) this.#othersWatch = false;
      this.#warn("Event relay: cannot read the watchers ({error})", error);
    }
    if (this.#closed) return;
    hub.watchedElsewhere = this.#othersWatch;
    if (this.#watchers > 0 && Date.now() - this.#lastPublish >= this.#o.keepaliveMs) {
      this.#publish(undefined, true);
    }
  }

  #publishBatch(batch: HubBatch): void {
    if (this.#closed || !this.#othersWatch) return;
    // Presence goes as changes (`p`), always; the batch carries the rest.
    const events = batch.events.filter((e) => e.type !== "presence");
    this.#publish({ events, dropped: batch.dropped });
  }

  #publish(batch?: HubBatch, keepalive = false): void {
    clearTimeout(this.#factTimer);
    this.#factTimer = undefined;
    const facts = this.#facts.splice(0, FACTS_PER_MESSAGE);
    if (this.#facts.length > 0) this.#factTimer = setTimeout(() => this.#publish(), 0);
    const hasBatch = batch !== undefined && (batch.events.length > 0 || batch.dropped > 0);
    if (!hasBatch && facts.length === 0 && !keepalive) return;
    const message: RelayMessage = { v: 1, o: this.#o.origin, p: facts, b: hasBatch ? batch : undefined };
    const count = facts.length + (hasBatch ? batch!.events.length : 0);
    this.#lastPublish = Date.now();
    const { metrics } = this.#o;
    this.#o.channel.publish(encodeRelayMessage(message)).then(() => {
      metrics?.relayMessages.inc({ outcome: "published" });
      if (count > 0) metrics?.relayEvents.inc({ direction: "published" }, count);
    }, (error) => {
      // A live event is worth nothing later: dropped, not queued (presence heals with the next change).
      metrics?.relayMessages.inc({ outcome: "failed" });
      this.#warn("Event relay: cannot publish ({error})", error);
    });
  }

  #receive(text: string): void {
    if (this.#closed) return;
    const { hub, presence, origin, metrics } = this.#o;
    const message = parseRelayMessage(text);
    if (!message) {
      metrics?.relayMessages.inc({ outcome: "invalid" });
      return;
    }
    if (message.o === origin) return; // our own, back from Redis
    this.#seen.set(message.o, Date.now());
    metrics?.relayMessages.inc({ outcome: "received" });
    const shown: HubEvent[] = [];
    for (const fact of message.p ?? []) {
      // Applied without an event or onLocal; shown here only if this process had not learnt it.
      if (presence.applyRemote(fact)) shown.push(fact);
    }
    const events = (message.b?.events ?? []).filter((e) => e.type !== "presence");
    for (const e of events) if (e.type === "heartbeat") presence.applyRemote(e);
    const count = (message.p?.length ?? 0) + events.length;
    if (count > 0) metrics?.relayEvents.inc({ direction: "received" }, count);
    const dropped = message.b?.dropped ?? 0;
    if (hub.listeners > 0 && (events.length > 0 || shown.length > 0 || dropped > 0)) {
      hub.deliver({ events: [...events, ...shown], dropped });
    }
  }

  #warn(message: string, error: unknown): void {
    const skipped = this.#throttle.take();
    if (skipped !== null) log.warn(message + (skipped ? ` (${skipped} more left out)` : ""), { error });
  }
}

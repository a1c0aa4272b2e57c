/**
 * @module device_service
 * Seed 000's Device Service as a part of the gateway: it checks every configured proxy service on
 * its own interval, turns each exchange into one MQTT event (`devices/events.ts`), publishes a fleet
 * summary when a proxy's status changes (and every `summaryIntervalMs`), starts a proxy's controller
 * on request, and gives incoming `mcs/events/...` messages to the handlers registered in
 * {@link DeviceService.handlers}. It needs only a broker connection: no queue, no database.
 */
import { getLogger } from "@logtape/logtape";
import { NotFoundError, UnavailableError } from "../lib/errors.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../lib/metrics.ts";
import type { DeviceConnection } from "./device_connection.ts";
import { EventPublisher, type PublisherStats, type PublishOutcome } from "./event_publisher.ts";
import {
  controllerEvent,
  DEVICE_TOPICS,
  deviceStatusEvent,
  fleetEvent,
  healthEvent,
  type ProxyStatusEvent,
  startEvent,
} from "./events.ts";
import { runHealthWorker } from "./health_worker.ts";
import { callProxy, type ProxyOutcome } from "./proxy_client.ts";
import { ProxyHistory } from "./proxy_history.ts";
import type { ProxyConfig } from "./proxy_registry.ts";
import { filterCovers, TopicHandlers } from "./topic_handlers.ts";

const log = getLogger(["gateway", "devices"]);

export interface DeviceServiceOptions {
  connection: DeviceConnection;
  proxies: readonly ProxyConfig[];
  /** Events kept while the broker is unreachable (`DEVICE_EVENT_BUFFER`). */
  bufferSize: number;
  /** Period of the fleet summary besides the one sent on every change; 0: on change only. */
  summaryIntervalMs: number;
  qos?: 0 | 1 | 2;
  metrics?: Metrics;
  /** For tests. */
  fetch?: typeof fetch;
  now?: () => Date;
}

export interface ControllerStartResult {
  event: ProxyStatusEvent;
  outcome: ProxyOutcome;
  published: PublishOutcome;
}

export class DeviceService {
  /** Register code for incoming messages: `service.handlers.register("custom/topic", fn)`. */
  readonly handlers: TopicHandlers;
  readonly publisher: EventPublisher;
  readonly #o: DeviceServiceOptions;
  readonly #proxies = new Map<number, ProxyConfig>();
  readonly #histories = new Map<number, ProxyHistory>();
  readonly #controller = new AbortController();
  readonly #subscribed = new Set<string>();
  readonly #loops: Promise<void>[] = [];
  readonly #now: () => Date;
  #offMessage?: () => void;
  #started = false;
  #closing?: Promise<void>;

  constructor(options: DeviceServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    for (const proxy of options.proxies) {
      this.#proxies.set(proxy.proxyid, proxy);
      this.#histories.set(proxy.proxyid, new ProxyHistory(proxy.proxyid));
    }
    this.publisher = new EventPublisher({
      connection: options.connection,
      capacity: options.bufferSize,
      qos: options.qos ?? 1,
      metrics: options.metrics,
    });
    this.handlers = new TopicHandlers((filter) => {
      if (this.#started) void this.#subscribe([filter]);
    });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Subscribes, publishes the start events and starts the health loops. */
  async start(): Promise<void> {
    if (this.#started) throw new Error("The device service is already started");
    this.#started = true;
    this.#offMessage = this.#o.connection.onMessage((topic, payload) =>
      this.handlers.dispatch(topic, payload)
    );
    await this.#subscribe([...DEVICE_TOPICS.subscriptions, ...this.handlers.filters()]);
    const at = this.#now();
    for (const proxyid of this.#proxies.keys()) {
      this.publisher.publish(DEVICE_TOPICS.start, startEvent(proxyid, at));
    }
    log.info("Device service started for proxies {proxyids}", {
      proxyids: [...this.#proxies.keys()].join(","),
    });
    this.#loops.push(runHealthWorker({
      proxies: [...this.#proxies.values()],
      onResult: (proxy, outcome, at) => this.#onHealth(proxy, outcome, at),
      signal: this.signal,
      fetch: this.#o.fetch,
      now: this.#now,
    }));
    if (this.#o.summaryIntervalMs > 0) this.#loops.push(this.#summaryLoop(this.#o.summaryIntervalMs));
  }

  /** Calls the proxy's controller start and publishes the result (or the error event). */
  async startController(proxyid: number, body?: unknown): Promise<ControllerStartResult> {
    const proxy = this.#proxies.get(proxyid);
    if (!proxy) throw new NotFoundError(`No proxy with proxyid ${proxyid} is configured`);
    if (this.signal.aborted) throw new UnavailableError("The device service is shutting down");
    let outcome: ProxyOutcome;
    try {
      outcome = await callProxy({
        url: `${proxy.base_url}${proxy.controller_start_path}`,
        method: "POST",
        timeoutMs: proxy.controller_timeout_ms ?? proxy.timeout_ms,
        signal: this.signal,
        body,
        fetch: this.#o.fetch,
      });
    } catch (error) {
      throw new UnavailableError("The device service is shutting down", { cause: error });
    }
    const event = controllerEvent(proxyid, outcome);
    this.#histories.get(proxyid)!.recordController(event, this.#now());
    const published = this.publisher.publish(DEVICE_TOPICS.proxyStatus(proxyid), event);
    log.info("Controller start of proxy {proxyid}: {status}", { proxyid, status: event.status });
    return { event, outcome, published };
  }

  /** Publishes the fleet summary now. */
  publishSummary(): PublishOutcome {
    const last = [...this.#histories.values()].map((h) => ({ proxyid: h.proxyid, event: h.last }));
    return this.publisher.publish(DEVICE_TOPICS.fleet, fleetEvent(last, this.#now()));
  }

  /** Each proxy's configuration (without credentials), last result and history. */
  proxies() {
    return [...this.#proxies.values()].map((p) => ({
      proxyid: p.proxyid,
      name: p.name ?? null,
      base_url: redact(p.base_url),
      health_path: p.health_path,
      controller_start_path: p.controller_start_path,
      timeout_ms: p.timeout_ms,
      interval_ms: p.interval_ms,
      ...this.#histories.get(p.proxyid)!.summary(),
    }));
  }

  proxy(proxyid: number) {
    const found = this.proxies().find((p) => p.proxyid === proxyid);
    if (!found) throw new NotFoundError(`No proxy with proxyid ${proxyid} is configured`);
    return found;
  }

  /** The `devices` section of `/mqtt/status`. */
  status(): {
    proxies: { proxyid: number; status: string; checked_at: string | null; consecutive_failures: number }[];
    events: PublisherStats;
    handlers: ReturnType<TopicHandlers["stats"]>;
  } {
    return {
      proxies: this.proxies().map((p) => ({
        proxyid: p.proxyid,
        status: p.last?.status ?? "unknown",
        checked_at: p.last_checked_at,
        consecutive_failures: p.history.consecutive_failures,
      })),
      events: this.publisher.stats(),
      handlers: this.handlers.stats(),
    };
  }

  /** Idempotent: stops the loops, cuts checks in progress short, and stops listening. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#controller.abort();
      await Promise.allSettled(this.#loops);
      this.#offMessage?.();
      this.publisher.close();
    })();
    return this.#closing;
  }

  #onHealth(proxy: ProxyConfig, outcome: ProxyOutcome, at: Date): void {
    const { proxyid } = proxy;
    const event = healthEvent(proxyid, outcome);
    const history = this.#histories.get(proxyid)!;
    const previous = history.last?.status;
    const changed = history.record(event, at);
    this.#o.metrics?.devicesChecks.inc({ status: event.status });
    this.publisher.publish(DEVICE_TOPICS.proxyStatus(proxyid), event);
    this.publisher.publish(DEVICE_TOPICS.deviceStatus(proxyid), deviceStatusEvent(proxyid, outcome));
    if (!changed) return;
    const props = { proxyid, previous: previous ?? "unknown", status: event.status };
    if (event.status === "healthy") log.info("Proxy {proxyid} is {status} (was {previous})", props);
    else log.warn("Proxy {proxyid} is {status} (was {previous})", props);
    // At start, one summary once every proxy has answered rather than one per first answer.
    if ([...this.#histories.values()].every((h) => h.last !== null)) this.publishSummary();
  }

  async #summaryLoop(periodMs: number): Promise<void> {
    while (!this.signal.aborted) {
      await sleep(periodMs, this.signal);
      if (this.signal.aborted) return;
      this.publishSummary();
    }
  }

  /** Subscribes to the filters not already covered by one we have. */
  async #subscribe(filters: readonly string[]): Promise<void> {
    const needed: string[] = [];
    for (const filter of filters) {
      if ([...this.#subscribed, ...needed].some((s) => filterCovers(s, filter))) continue;
      needed.push(filter);
    }
    if (needed.length === 0) return;
    for (const filter of needed) this.#subscribed.add(filter);
    try {
      await this.#o.connection.subscribe(needed, this.#o.qos ?? 1);
    } catch (error) {
      // The connection keeps the filters and subscribes again on its next connect.
      log.error("Cannot subscribe to {filters} now: {error}", { filters: needed.join(", "), error });
    }
  }
}

function redact(url: string): string {
  const u = new URL(url);
  if (!u.username && !u.password) return url;
  u.username = "";
  u.password = "";
  return u.toString().replace(/\/$/, "");
}

/**
 * @module proxy_history
 * What the device service remembers about one proxy, for `GET /api/v1/proxies` and `/mqtt/status`:
 * its last health event, counts by status, the current run of failures, the last few checks, and the
 * last controller start. Memory per proxy is bounded (`recentSize` checks).
 */
import type { ProxyStatusEvent } from "./events.ts";

export interface CheckRecord {
  status: string;
  at: string;
  response_time?: number;
}

export class ProxyHistory {
  readonly proxyid: number;
  readonly #recentSize: number;
  readonly #recent: CheckRecord[] = [];
  readonly #byStatus: Record<string, number> = {};
  #last: ProxyStatusEvent | null = null;
  #lastAt: Date | null = null;
  #lastHealthyAt: Date | null = null;
  #lastFailureAt: Date | null = null;
  #consecutiveFailures = 0;
  #checks = 0;
  #responseTimeSum = 0;
  #responseTimeCount = 0;
  #controller: { event: ProxyStatusEvent; at: string } | null = null;

  constructor(proxyid: number, recentSize = 20) {
    this.proxyid = proxyid;
    this.#recentSize = recentSize;
  }

  /** The last health event, or null before the first check. */
  get last(): ProxyStatusEvent | null {
    return this.#last;
  }

  /** Records a health event; true when its status differs from the previous one (or is the first). */
  record(event: ProxyStatusEvent, at: Date): boolean {
    const changed = this.#last?.status !== event.status;
    this.#last = event;
    this.#lastAt = at;
    this.#checks++;
    this.#byStatus[event.status] = (this.#byStatus[event.status] ?? 0) + 1;
    if (event.status === "healthy") {
      this.#lastHealthyAt = at;
      this.#consecutiveFailures = 0;
    } else {
      this.#lastFailureAt = at;
      this.#consecutiveFailures++;
    }
    const responseTime = typeof event.response_time === "number" ? event.response_time : undefined;
    if (responseTime !== undefined && event.status === "healthy") {
      this.#responseTimeSum += responseTime;
      this.#responseTimeCount++;
    }
    this.#recent.push({
      status: event.status,
      at: at.toISOString(),
      ...(responseTime === undefined ? {} : { response_time: responseTime }),
    });
    if (this.#recent.length > this.#recentSize) this.#recent.shift();
    return changed;
  }

  recordController(event: ProxyStatusEvent, at: Date): void {
    this.#controller = { event, at: at.toISOString() };
  }

  summary() {
    return {
      last: this.#last,
      last_checked_at: this.#lastAt?.toISOString() ?? null,
      history: {
        checks: this.#checks,
        by_status: { ...this.#byStatus },
        consecutive_failures: this.#consecutiveFailures,
        last_healthy_at: this.#lastHealthyAt?.toISOString() ?? null,
        last_failure_at: this.#lastFailureAt?.toISOString() ?? null,
        avg_response_time: this.#responseTimeCount
          ? Math.round((this.#responseTimeSum / this.#responseTimeCount) * 10_000) / 10_000
          : null,
        recent: [...this.#recent],
      },
      controller: this.#controller,
    };
  }
}

/**
 * @module alerter
 * Raises machine-error alerts: a warning in the log and, when `ALERT_WEBHOOK_URL` is set, a JSON
 * POST to it. Webhook calls run in the background with a timeout; `close()` waits for them.
 */
import { getLogger } from "@logtape/logtape";
import type { Alert } from "./job_handler.ts";
import { urlOrigin } from "../lib/redact.ts";

const log = getLogger(["gateway", "alert"]);

export class Alerter {
  readonly #pending = new Set<Promise<void>>();

  constructor(readonly webhookUrl?: string, readonly timeoutMs = 5000) {}

  alert = (alert: Alert): void => {
    log.warn("Machine {serialNo} reported {level} {code}: {message}", { ...alert });
    if (!this.webhookUrl) return;
    const call = this.#post(alert).finally(() => this.#pending.delete(call));
    this.#pending.add(call);
  };

  async #post(alert: Alert): Promise<void> {
    try {
      const res = await fetch(this.webhookUrl!, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          serial_no: alert.serialNo,
          code: alert.code,
          level: alert.level,
          message: alert.message,
          received_at: alert.receivedAt.toISOString(),
        }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await res.body?.cancel();
      if (!res.ok) {
        log.error("Alert webhook answered {status} for {serialNo}", { status: res.status, ...alert });
      }
    } catch (error) {
      // fetch's message names the URL, whose path is often the webhook's secret.
      const url = this.webhookUrl!;
      const origin = urlOrigin(url);
      let message = String((error as Error).message);
      for (const form of [url, new URL(url).href]) message = message.replaceAll(form, `${origin}/…`);
      log.error("Cannot deliver alert for {serialNo} to the webhook at {origin}: {error}", {
        serialNo: alert.serialNo,
        origin,
        error: message,
      });
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }
}

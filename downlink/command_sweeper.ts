/**
 * @module command_sweeper
 * Ends commands whose TTL passed without a final answer: `queued` (never published: the downlink
 * was down or held back), `sent` (the broker took it, the machine never acked) and `delivered`
 * (the machine got it but never reported a result) all become `expired`, so nothing stays
 * pending forever. A late ack from the machine still records its real outcome (see the Store).
 */
import { getLogger } from "@logtape/logtape";
import type { Store } from "../db/store.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../lib/metrics.ts";

const log = getLogger(["gateway", "downlink"]);

export interface SweeperOptions {
  store: Pick<Store, "expireCommands">;
  metrics?: Metrics;
  signal: AbortSignal;
  intervalMs?: number;
  now?: () => Date;
}

/** Runs until `signal` aborts. Several gateways may run it: the UPDATE is idempotent. */
export async function runCommandSweeper(o: SweeperOptions): Promise<void> {
  const interval = o.intervalMs ?? 1000;
  let failing = false;
  while (!o.signal.aborted) {
    await sleep(interval, o.signal);
    if (o.signal.aborted) break;
    try {
      const expired = await o.store.expireCommands(o.now?.() ?? new Date());
      if (expired > 0) {
        o.metrics?.commands.inc({ status: "expired" }, expired);
        log.info("{count} commands expired without a final answer", { count: expired });
      }
      failing = false;
    } catch (error) {
      if (!failing) log.error("Cannot expire old commands: {error}", { error });
      failing = true;
    }
  }
}

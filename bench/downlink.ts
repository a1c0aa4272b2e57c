/**
 * @module downlink
 * Scenario 4: commands from HTTP to receipt on the machine. The benchmark POSTs
 * `/api/v1/machines/{serial}/commands` at a fixed rate (1,000/s) to random simulated machines,
 * each command's payload carrying `sent_at` taken just before the request; the machine (the load
 * generator process) takes `receipt − sent_at` and answers with a `command/ack`. Skipped, with the
 * reason printed, when the gateway has no such route.
 */
import { percentile } from "../sim/fleet.ts";
import { type BenchContext, randomId, type ScenarioResult, waitUntil } from "./context.ts";
import type { GatewayProcess } from "./gateway_process.ts";
import { fleetArgs, LoadGenerator } from "./load.ts";
import { ProcWatcher } from "./services.ts";

/** Requests the benchmark keeps open at most; beyond, a due request is not sent and counted as shed. */
const MAX_IN_FLIGHT = 256;

function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Why the downlink cannot be measured against this gateway, or null when it can. */
export async function downlinkMissing(gateway: GatewayProcess, apiToken: string): Promise<string | null> {
  const res = await fetch(`${gateway.url}/api/v1/machines/BENCH-PROBE/commands`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
    body: JSON.stringify({ command: "ping", payload: {} }),
  });
  const text = await res.text();
  if (res.status === 404 && text.includes("No route")) {
    return "the gateway has no POST /api/v1/machines/{serial}/commands route yet (bridge/downlink.ts not wired)";
  }
  if (res.status >= 500 || res.status === 401 || res.status === 403) {
    return `the command route answered ${res.status}: ${text.slice(0, 200)}`;
  }
  return null;
}

export async function runDownlink(
  ctx: BenchContext,
  gateway: GatewayProcess,
  apiToken: string,
): Promise<ScenarioResult> {
  const { downlinkMachines: machines, downlinkRate: rate, downlinkSeconds: seconds } = ctx.sizes;
  const title = `4. Downlink: ${rate} commands/s, HTTP → receipt on the machine (${machines} machines)`;
  const missing = await downlinkMissing(gateway, apiToken);
  if (missing) return { name: "downlink", title, figures: [], notes: [], skipped: missing };

  const prefix = `D${randomId(4)}-`;
  const load = new LoadGenerator([
    ...fleetArgs({ url: ctx.mosquitto.url, machines }),
    "--heartbeat-interval",
    "0",
    "--transaction-rate",
    "0",
    "--error-rate",
    "0",
    "--serial-prefix",
    prefix,
  ]);
  try {
    // The command route answers 404 for a machine it has never heard of: register them.
    const width = String(machines).length;
    const serial = (i: number) => `${prefix}${String(i + 1).padStart(width, "0")}`;
    const serials = Array.from({ length: machines }, (_, i) => [serial(i)]);
    await ctx.db.query("INSERT IGNORE INTO machines (serial_no) VALUES ?", [serials]);
    await load.connected;
    // Subscriptions are made right after CONNACK; give the last SUBACKs a moment.
    await new Promise((r) => setTimeout(r, 500));
    await load.go();
    const target = () =>
      `${gateway.url}/api/v1/machines/${serial(Math.floor(Math.random() * machines))}/commands`;
    const headers = { authorization: `Bearer ${apiToken}`, "content-type": "application/json" };
    /** Open loop at `rate`, bounded by MAX_IN_FLIGHT; `stamp` puts `sent_at` in the payload (measured). */
    const drive = async (total: number, stamp: boolean) => {
      const http: number[] = [];
      const statuses = new Map<number, number>();
      const requests: Promise<void>[] = [];
      const start = performance.now();
      let sent = 0;
      let inFlight = 0;
      let shed = 0;
      while (sent < total && !ctx.signal.aborted) {
        const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
        for (; sent < due; sent++) {
          // Open loop, but bounded: a gateway that falls behind is reported, not buried.
          if (inFlight >= MAX_IN_FLIGHT) {
            shed++;
            continue;
          }
          inFlight++;
          const sentAt = epochMs();
          requests.push((async () => {
            try {
              const res = await fetch(target(), {
                method: "POST",
                headers,
                body: JSON.stringify({
                  command: "ping",
                  payload: stamp ? { sent_at: sentAt } : {},
                  ttl_seconds: 60,
                }),
              });
              await res.body?.cancel();
              statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            } catch {
              statuses.set(0, (statuses.get(0) ?? 0) + 1);
            }
            http.push(epochMs() - sentAt);
            inFlight--;
          })());
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      await Promise.all(requests);
      const accepted = (statuses.get(202) ?? 0) + (statuses.get(200) ?? 0) + (statuses.get(201) ?? 0);
      return { http, statuses, shed, accepted, seconds: (performance.now() - start) / 1000 };
    };
    // Warm-up, not measured: the first second pays for JIT compilation and new database
    // connections (p50 ~150 ms there), which says nothing about the rate the gateway sustains.
    const warmTotal = Math.round(rate * Math.min(1, seconds));
    const warm = await drive(warmTotal, false);
    await waitUntil(() => (load.last?.commandsReceived ?? 0) >= warm.accepted, 30_000, ctx.signal, 50);
    const warmReceived = load.last?.commandsReceived ?? 0;
    const watch = new ProcWatcher(gateway.pid);
    const total = Math.round(rate * seconds);
    const { http, statuses, shed, accepted: measured, seconds: sendSeconds } = await drive(total, true);
    const accepted = measured + warmReceived;
    const arrived = await waitUntil(
      () => (load.last?.commandsReceived ?? 0) >= accepted && (load.last?.commandsAnswered ?? 0) >= accepted,
      30_000,
      ctx.signal,
      100,
    );
    const proc = watch.stop();
    const done = await load.stop();
    const latencies = done?.command_latencies ?? [];
    const scrape = await gateway.scrape();
    return {
      name: "downlink",
      title,
      figures: [
        { metric: "commands accepted by HTTP", value: measured / sendSeconds, unit: "cmd/s", rate: true },
        { metric: "HTTP → receipt on the machine p50", value: percentile(latencies, 50), unit: "ms" },
        { metric: "HTTP → receipt on the machine p99", value: percentile(latencies, 99), unit: "ms" },
        { metric: "HTTP response p99", value: percentile(http, 99), unit: "ms" },
        {
          metric: "commands received by machines",
          value: (done?.stats.commandsReceived ?? 0) - warmReceived,
          unit: `of ${measured}`,
        },
        { metric: "gateway RSS peak", value: proc.peakRssMb, unit: "MB" },
        { metric: "gateway CPU mean", value: proc.meanCpuPercent, unit: "%" },
      ],
      notes: [
        `after a 1 s warm-up at the same rate (${warm.accepted} commands, not measured); HTTP statuses: ${
          JSON.stringify(Object.fromEntries(statuses))
        }; ${shed} of ${total} due requests not ` +
        `sent because ${MAX_IN_FLIGHT} were already waiting for an answer` +
        (arrived ? "" : "; not every accepted command arrived within 30 s"),
        `command lifecycle counters: ${
          JSON.stringify(
            Object.fromEntries(
              [...scrape.series.values()].filter((s) => s.name === "gateway_commands_total")
                .map((s) => [s.labels.status ?? "", s.value]),
            ),
          )
        }`,
      ],
    };
  } finally {
    await load.stop().catch(() => null);
  }
}

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
import { fleetArgs, type LoadDone, LoadGenerator } from "./load.ts";
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
    return "the gateway has no POST /api/v1/machines/{serial}/commands route yet (downlink/ not wired)";
  }
  if (res.status >= 500 || res.status === 401 || res.status === 403) {
    return `the command route answered ${res.status}: ${text.slice(0, 200)}`;
  }
  return null;
}

export interface CommandRun {
  /** Commands answered 2xx while measuring, per second of sending. */
  acceptedRate: number;
  accepted: number;
  /** HTTP → receipt on the machine, ms, of the measured commands. */
  latencies: number[];
  /** HTTP round trips, ms. */
  http: number[];
  statuses: Map<number, number>;
  shed: number;
  due: number;
  warmAccepted: number;
  /** Received by the machines after the warm-up. */
  received: number;
  /** Every accepted command arrived (and was answered) within 30 s. */
  arrived: boolean;
  done: LoadDone | null;
}

/**
 * Open loop at `rate` commands/s for `seconds` (after a 1 s warm-up at the same rate, not
 * measured) to random machines of `load`, whose payload's `sent_at` the machine turns into a
 * receipt latency. Stops `load`. Shared by scenario 4 and the downlink floor of scenario 1.
 */
export async function measureCommands(o: {
  ctx: BenchContext;
  load: LoadGenerator;
  baseUrl: string;
  apiToken: string;
  serial: (i: number) => string;
  machines: number;
  rate: number;
  seconds: number;
}): Promise<CommandRun> {
  const { ctx, load, rate } = o;
  const target = () =>
    `${o.baseUrl}/api/v1/machines/${o.serial(Math.floor(Math.random() * o.machines))}/commands`;
  const headers = { authorization: `Bearer ${o.apiToken}`, "content-type": "application/json" };
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
  await load.connected;
  // Subscriptions are made right after CONNACK; give the last SUBACKs a moment.
  await new Promise((r) => setTimeout(r, 500));
  await load.go();
  // Warm-up, not measured: the first second pays for JIT compilation and new database
  // connections (p50 ~150 ms there), which says nothing about the rate the gateway sustains.
  const warm = await drive(Math.round(rate * Math.min(1, o.seconds)), false);
  await waitUntil(() => (load.last?.commandsReceived ?? 0) >= warm.accepted, 30_000, ctx.signal, 50);
  const warmReceived = load.last?.commandsReceived ?? 0;
  const due = Math.round(rate * o.seconds);
  const run = await drive(due, true);
  const accepted = run.accepted + warmReceived;
  const arrived = await waitUntil(
    () => (load.last?.commandsReceived ?? 0) >= accepted && (load.last?.commandsAnswered ?? 0) >= accepted,
    30_000,
    ctx.signal,
    100,
  );
  const done = await load.stop();
  return {
    acceptedRate: run.accepted / run.seconds,
    accepted: run.accepted,
    latencies: done?.command_latencies ?? [],
    http: run.http,
    statuses: run.statuses,
    shed: run.shed,
    due,
    warmAccepted: warm.accepted,
    received: (done?.stats.commandsReceived ?? 0) - warmReceived,
    arrived,
    done,
  };
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
  const load = commandFleet(ctx, machines, prefix);
  try {
    // The command route answers 404 for a machine it has never heard of: register them.
    const serial = serialOf(prefix, machines);
    const serials = Array.from({ length: machines }, (_, i) => [serial(i)]);
    await ctx.db.query("INSERT IGNORE INTO machines (serial_no) VALUES ?", [serials]);
    const watch = new ProcWatcher(gateway.pid);
    const run = await measureCommands({
      ctx,
      load,
      baseUrl: gateway.url,
      apiToken,
      serial,
      machines,
      rate,
      seconds,
    });
    const proc = watch.stop();
    const scrape = await gateway.scrape();
    return {
      name: "downlink",
      title,
      figures: [
        { metric: "commands accepted by HTTP", value: run.acceptedRate, unit: "cmd/s", rate: true },
        { metric: "HTTP → receipt on the machine p50", value: percentile(run.latencies, 50), unit: "ms" },
        { metric: "HTTP → receipt on the machine p99", value: percentile(run.latencies, 99), unit: "ms" },
        { metric: "HTTP response p99", value: percentile(run.http, 99), unit: "ms" },
        { metric: "commands received by machines", value: run.received, unit: `of ${run.accepted}` },
        { metric: "gateway RSS peak", value: proc.peakRssMb, unit: "MB" },
        { metric: "gateway CPU mean", value: proc.meanCpuPercent, unit: "%" },
      ],
      notes: [
        runNote(run),
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

/** The simulated machines commands go to: they only subscribe and answer. */
export function commandFleet(ctx: BenchContext, machines: number, prefix: string): LoadGenerator {
  return new LoadGenerator([
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
}

/** The load generator's serial of machine `i` (zero-padded to the fleet's width). */
export function serialOf(prefix: string, machines: number): (i: number) => string {
  const width = String(machines).length;
  return (i) => `${prefix}${String(i + 1).padStart(width, "0")}`;
}

export function runNote(run: CommandRun): string {
  return `after a 1 s warm-up at the same rate (${run.warmAccepted} commands, not measured); HTTP statuses: ${
    JSON.stringify(Object.fromEntries(run.statuses))
  }; ${run.shed} of ${run.due} due requests not sent because ${MAX_IN_FLIGHT} were already waiting for an answer` +
    (run.arrived ? "" : "; not every accepted command arrived within 30 s");
}

/**
 * @module simulate
 * `deno task simulate`: N simulated vending machines, each a real MQTT connection, that (optionally)
 * get a token from the gateway API, heartbeat, sell, raise errors and answer commands, with a
 * summary line every second. `--help` lists the flags. The benchmarks run it as their load
 * generator (`--json --wait-go`), in a process of its own so it does not share the gateway's
 * event loop.
 */
import { parseArgs } from "node:util";
import { epochMs, Fleet, type FleetStats, percentile } from "./fleet.ts";

const HELP = `deno task simulate [flags]

  --machines N             simulated machines, one MQTT connection each (default 500)
  --url URL                broker (default mqtt://127.0.0.1:2834, the gateway's embedded broker)
  --protocol 4|5           MQTT 3.1.1 or 5 (default 4)
  --connect-rate N         new connections per second (default 1000)
  --heartbeat-interval S   seconds between two heartbeats of one machine (default 10; 0 = none)
  --transaction-rate N     sales per second, fleet-wide (default 1)
  --error-rate N           error reports per second, fleet-wide (default 0.1)
  --payload-bytes N        pad each uplink payload to about N bytes (default: no padding)
  --duration S             stop after S seconds of sending (default 0 = until Ctrl-C)
  --api URL                gateway HTTP API for machine tokens (default http://127.0.0.1:5200)
  --api-token TOKEN        API bearer token: each machine first gets its own token through
                           POST /api/v1/machines/{serial}/token and connects with
                           username = serial, password = token (without it: anonymous)
  --serial-prefix P        serials are P01, P02, … zero-padded to the largest number
                           (default SIM-: SIM-01 … SIM-10 for 10 machines)
  --first-index N          number of the first machine (default 1)
  --no-commands            do not subscribe to machine/{serial}/command
  --slot-stock N           items in each of a machine's 8 slots at start; no machine sells from an
                           empty slot (default 20; 0 = unlimited, the default in blast mode). With
                           --api-token each machine also sets that stock on the gateway
                           (PUT /api/v1/machines/{serial}/slots) before it connects
  --messages N             blast mode: send N messages as fast as the broker takes them, then exit
  --inflight N             blast mode: unacknowledged publishes per connection (default 10)
  --transaction-share F    blast mode: share of transactions, the rest heartbeats (default 0.5)
  --duplicate-share F      blast mode: share of transactions sent twice with one id (default 0)
  --json                   print JSON lines instead of text (for the benchmarks)
  --wait-go                after connecting, wait for a line "go" on standard input
  --run-id ID              prefix of client and transaction ids (default: random)
`;

interface Cli {
  machines: number;
  url: string;
  protocol: 4 | 5;
  connectRate: number;
  heartbeatInterval: number;
  transactionRate: number;
  errorRate: number;
  payloadBytes: number;
  duration: number;
  api: string;
  apiToken?: string;
  serialPrefix: string;
  firstIndex: number;
  commands: boolean;
  messages: number;
  inflight: number;
  transactionShare: number;
  duplicateShare: number;
  json: boolean;
  waitGo: boolean;
  runId: string;
  /** Items per slot at start; undefined: unlimited. */
  slotStock?: number;
}

/** `--slot-stock`: 20 by default (unlimited in blast mode, whose benchmarks count every sale); 0 = unlimited. */
function slotStock(raw: string | undefined, blast: boolean): number | undefined {
  if (raw === undefined) return blast ? undefined : 20;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 0 || n > 1e9) {
    throw new Error(`--slot-stock must be an integer from 0 to 1000000000, got "${raw}"`);
  }
  return n === 0 ? undefined : n;
}

/** Parses the flags; throws an Error naming the flag on a bad value. */
export function parseCli(args: string[]): Cli | "help" {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      machines: { type: "string", default: "500" },
      url: { type: "string", default: "mqtt://127.0.0.1:2834" },
      protocol: { type: "string", default: "4" },
      "connect-rate": { type: "string", default: "1000" },
      "heartbeat-interval": { type: "string", default: "10" },
      "transaction-rate": { type: "string", default: "1" },
      "error-rate": { type: "string", default: "0.1" },
      "payload-bytes": { type: "string", default: "0" },
      duration: { type: "string", default: "0" },
      api: { type: "string", default: "http://127.0.0.1:5200" },
      "api-token": { type: "string" },
      "serial-prefix": { type: "string", default: "SIM-" },
      "first-index": { type: "string", default: "1" },
      "no-commands": { type: "boolean", default: false },
      messages: { type: "string", default: "0" },
      inflight: { type: "string", default: "10" },
      "transaction-share": { type: "string", default: "0.5" },
      "duplicate-share": { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      "wait-go": { type: "boolean", default: false },
      "run-id": { type: "string" },
      "slot-stock": { type: "string" },
    },
  });
  if (values.help) return "help";
  const num = (name: keyof typeof values, min: number, max = Infinity, int = false): number => {
    const raw = values[name] as string;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
      throw new Error(
        `--${name} must be a${int ? "n integer" : " number"} from ${min} to ${max}, got "${raw}"`,
      );
    }
    return n;
  };
  const protocol = num("protocol", 4, 5, true);
  if (!/^[A-Za-z0-9_-]{0,40}$/.test(values["serial-prefix"]!)) {
    throw new Error(
      `--serial-prefix may hold letters, digits, _ and - only (at most 40), got "${values["serial-prefix"]}"`,
    );
  }
  if (!/^(mqtts?|tcp|wss?):\/\//.test(values.url!)) {
    throw new Error(`--url must be an mqtt:// (or mqtts, ws, wss, tcp) URL, got "${values.url}"`);
  }
  return {
    machines: num("machines", 1, 100_000, true),
    url: values.url!,
    protocol: protocol as 4 | 5,
    connectRate: num("connect-rate", 1),
    heartbeatInterval: num("heartbeat-interval", 0),
    transactionRate: num("transaction-rate", 0),
    errorRate: num("error-rate", 0),
    payloadBytes: num("payload-bytes", 0, 1024 * 1024, true),
    duration: num("duration", 0),
    api: values.api!,
    apiToken: values["api-token"],
    serialPrefix: values["serial-prefix"]!,
    firstIndex: num("first-index", 0, 1e9, true),
    commands: !values["no-commands"],
    messages: num("messages", 0, 1e9, true),
    inflight: num("inflight", 1, 65535, true),
    transactionShare: num("transaction-share", 0, 1),
    duplicateShare: num("duplicate-share", 0, 1),
    json: values.json!,
    waitGo: values["wait-go"]!,
    runId: values["run-id"] ?? crypto.randomUUID().slice(0, 8),
    slotStock: slotStock(values["slot-stock"], num("messages", 0, 1e9, true) > 0),
  };
}

function summaryLine(t: number, now: FleetStats, last: FleetStats, dt: number): string {
  const rate = (a: number, b: number) => Math.round((a - b) / dt);
  return [
    `[${t.toFixed(0).padStart(4)}s]`,
    `connected ${now.connected}/${now.machines}`,
    `sent/s hb ${rate(now.sent.heartbeat, last.sent.heartbeat)} tx ${
      rate(now.sent.transaction, last.sent.transaction)
    } err ${rate(now.sent.error, last.sent.error)}`,
    `puback/s ${rate(now.pubacked, last.pubacked)}`,
    `commands ${now.commandsReceived} answered ${now.commandsAnswered}`,
    `failures connect ${now.connectFailures} token ${now.tokenFailures} stock ${now.stockFailures} publish ${now.publishErrors}`,
  ].join(" | ");
}

/** Resolves with each line of standard input (until it closes). */
async function* stdinLines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of Deno.stdin.readable) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
    }
  }
}

export async function main(args: string[]): Promise<number> {
  let cli: Cli | "help";
  try {
    cli = parseCli(args);
  } catch (error) {
    console.error(`simulate: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (cli === "help") {
    console.log(HELP);
    return 0;
  }
  const c = cli;
  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const emit = (event: string, data: Record<string, unknown>) => {
    if (c.json) console.log(JSON.stringify({ event, t: epochMs(), ...data }));
  };

  const fleet = new Fleet({
    url: c.url,
    machines: c.machines,
    serialPrefix: c.serialPrefix,
    firstIndex: c.firstIndex,
    connectRate: c.connectRate,
    protocolVersion: c.protocol,
    payloadBytes: c.payloadBytes,
    answerCommands: c.commands,
    api: c.apiToken ? { url: c.api, token: c.apiToken } : undefined,
    runId: c.runId,
    slotStock: c.slotStock,
    signal: controller.signal,
  });

  // Standard input: "go" starts sending (with --wait-go), "stop" or end of input stops.
  let go: () => void = () => {};
  const started = new Promise<void>((resolve) => go = resolve);
  if (c.waitGo) {
    (async () => {
      for await (const line of stdinLines()) {
        if (line === "go") go();
        if (line === "stop") break;
      }
      stop();
    })().catch(stop);
  } else {
    go();
  }

  const t0 = performance.now();
  let last = fleet.snapshot();
  let lastAt = t0;
  const ticker = setInterval(() => {
    const now = fleet.snapshot();
    const at = performance.now();
    if (c.json) emit("tick", { stats: now });
    else console.log(summaryLine((at - t0) / 1000, now, last, (at - lastAt) / 1000));
    last = now;
    lastAt = at;
  }, 1000);

  try {
    if (!c.json) {
      console.log(
        `Connecting ${c.machines} machines to ${c.url} at ${c.connectRate}/s` +
          (c.apiToken ? ` with tokens from ${c.api}` : " (anonymous)"),
      );
    }
    const connectStart = performance.now();
    await fleet.connect();
    const connectSeconds = (performance.now() - connectStart) / 1000;
    emit("connected", { stats: fleet.snapshot(), seconds: connectSeconds });
    if (!c.json) {
      console.log(`${fleet.stats.connected}/${c.machines} connected in ${connectSeconds.toFixed(1)} s`);
    }
    await Promise.race([
      started,
      new Promise((r) => controller.signal.addEventListener("abort", r, { once: true })),
    ]);
    const sendStart = performance.now();
    if (!controller.signal.aborted) {
      if (c.messages > 0) {
        await fleet.blast({
          messages: c.messages,
          inflight: c.inflight,
          transactionShare: c.transactionShare,
          duplicateShare: c.duplicateShare,
        });
      } else {
        await fleet.runSteady({
          heartbeatIntervalS: c.heartbeatInterval,
          transactionRate: c.transactionRate,
          errorRate: c.errorRate,
        }, c.duration);
      }
    }
    const seconds = (performance.now() - sendStart) / 1000;
    const stats = fleet.snapshot();
    const sent = stats.sent.heartbeat + stats.sent.transaction + stats.sent.error;
    const summary = {
      stats,
      seconds,
      sent,
      send_rate: sent / seconds,
      puback_ms: { p50: percentile(fleet.pubackLatencies, 50), p99: percentile(fleet.pubackLatencies, 99) },
      command_ms: {
        count: fleet.commandLatencies.length,
        p50: percentile(fleet.commandLatencies, 50),
        p99: percentile(fleet.commandLatencies, 99),
      },
    };
    if (c.json) {
      emit("done", { ...summary, command_latencies: fleet.commandLatencies });
    } else {
      console.log(
        `Sent ${sent} messages in ${seconds.toFixed(1)} s (${Math.round(summary.send_rate)}/s); ` +
          `broker PUBACK p50 ${summary.puback_ms.p50.toFixed(1)} ms p99 ${
            summary.puback_ms.p99.toFixed(1)
          } ms; ` +
          `commands received ${stats.commandsReceived}, answered ${stats.commandsAnswered}`,
      );
    }
    return 0;
  } finally {
    clearInterval(ticker);
    await fleet.close();
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * @module demo
 * `deno task demo`: the gateway (embedded broker, queue and database in `DATA_DIR`, as `deno task start`
 * runs it) and 10 simulated machines `SIM-01` … `SIM-10` together, each with 8 slots of 20 items that it
 * tells the gateway through `PUT /api/v1/machines/{serial}/slots` before it connects (so the console
 * shows real stock, counted down by the sales, never below 0: a machine sells only what it holds), then
 * one dispense to `SIM-01` that the machine acknowledges, and curl commands (with this run's token) that
 * work as pasted. Ctrl-C stops both; `--once` stops after the dispense (for scripts and the test).
 *
 * `HTTP_PORT` (5200), `MQTT_LISTEN_PORT` (2834), `DATA_DIR` (./data) and `API_TOKEN` (random) may be
 * set; nothing else of the environment or a `.env` reaches the gateway, so the demo always runs on
 * the embedded parts.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MACHINES = 10;
/** Items in each of a machine's 8 slots (tools/sim/fleet.ts SLOTS) at start. */
const SLOT_STOCK = 20;
const SLOTS = 8;
const serials = Array.from({ length: MACHINES }, (_, i) => `SIM-${String(i + 1).padStart(2, "0")}`);

function setting(name: string, fallback: string): string {
  return Deno.env.get(name)?.trim() || fallback;
}

const httpPort = Number(setting("HTTP_PORT", "5200"));
const brokerPort = Number(setting("MQTT_LISTEN_PORT", "2834"));
const dataDir = setting("DATA_DIR", "./data");
const token = setting("API_TOKEN", randomBytes(18).toString("base64url"));
const api = `http://127.0.0.1:${httpPort}`;
const once = Deno.args.includes("--once");

function say(line = ""): void {
  console.log(line);
}

/** A child whose output lines are shown with a prefix (or kept quiet) and kept for error messages. */
function start(name: string, args: string[], env: Record<string, string>, show: (line: string) => boolean) {
  const inherited: Record<string, string> = {};
  for (const v of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "NO_COLOR"]) {
    const value = Deno.env.get(v);
    if (value !== undefined) inherited[v] = value;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    clearEnv: true,
    env: { ...inherited, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (show(line)) say(`[${name}] ${line}`);
      }
    }
  };
  const drained = Promise.all([pump(child.stdout), pump(child.stderr)]);
  return { child, tail, drained };
}

type Json = Record<string, unknown>;

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, json };
}

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const t0 = performance.now();
const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);
say(`Starting the gateway on ${api} (MQTT broker 127.0.0.1:${brokerPort}, data in ${dataDir}) …`);
const gateway = start("gateway", [
  "run",
  "--allow-env",
  "--allow-read",
  "--allow-run",
  "launch.ts",
  "main.ts",
], {
  API_TOKEN: token,
  HTTP_PORT: String(httpPort),
  MQTT_LISTEN_PORT: String(brokerPort),
  DATA_DIR: dataDir,
  GATEWAY_ENV_FILE: "",
  LOG_LEVEL: "warning",
}, () => true);
let sim: ReturnType<typeof start> | undefined;

async function stop(): Promise<void> {
  for (const p of [sim, gateway]) {
    try {
      p?.child.kill("SIGTERM");
    } catch { /* exited */ }
  }
  await Promise.all([sim?.child.status, gateway.child.status]);
  await Promise.all([sim?.drained, gateway.drained]);
}

let stopping = false;
const onSignal = () => {
  if (stopping) return;
  stopping = true;
  say("\nStopping the simulator and the gateway …");
  stop().then(() => Deno.exit(0));
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);

try {
  let exited = false;
  gateway.child.status.then(() => exited = true);
  await until("the gateway's /healthz", 60_000, async () => {
    if (exited) throw new Error("stop");
    return (await fetch(`${api}/healthz`)).ok || undefined;
  }).catch((error) => {
    throw new Error(`the gateway did not start (${(error as Error).message}):\n${gateway.tail.join("\n")}`);
  });
  say(`Gateway up (${seconds()} s). Starting ${MACHINES} simulated machines SIM-01 … SIM-${MACHINES} …`);
  sim = start(
    "sim",
    [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "tools/sim/simulate.ts",
      "--machines",
      String(MACHINES),
      "--url",
      `mqtt://127.0.0.1:${brokerPort}`,
      "--api",
      api,
      "--api-token",
      token,
      "--heartbeat-interval",
      "5",
      "--transaction-rate",
      "0.2",
      "--error-rate",
      "0",
      "--slot-stock",
      String(SLOT_STOCK),
    ],
    {},
    (line) => /error|cannot|refused/i.test(line),
  );

  await until("SIM-01's first heartbeat", 60_000, async () => {
    const { status, json } = await http("GET", "/api/v1/machines/SIM-01");
    return status === 200 && json.last_heard_at ? json : undefined;
  });
  say(`SIM-01 is online (${seconds()} s). Waiting for every machine's slots to be stocked …`);
  await until(`${SLOTS} stocked slots on each of ${serials.join(", ")}`, 60_000, async () => {
    for (const serial of serials) {
      const { status, json } = await http("GET", `/api/v1/machines/${serial}`);
      if (status !== 200 || (json.slots as unknown[]).length < SLOTS) return undefined;
    }
    return true;
  });
  say(
    `Stocked (${seconds()} s): ${SLOTS} slots × ${SLOT_STOCK} items on every machine. Sending SIM-01 a dispense for slot 1 …`,
  );
  const accepted = await http("POST", "/api/v1/machines/SIM-01/commands", {
    command: "dispense",
    payload: { slot_no: 1 },
  });
  if (accepted.status !== 202) {
    throw new Error(`POST dispense answered ${accepted.status}: ${JSON.stringify(accepted.json)}`);
  }
  const id = accepted.json.message_id as string;
  const done = await until(`command ${id} to succeed`, 30_000, async () => {
    const { json } = await http("GET", `/api/v1/commands/${id}`);
    if (json.status === "failed" || json.status === "expired") {
      throw new Error(`command ${id} ${json.status}`);
    }
    return json.status === "succeeded" ? json : undefined;
  });
  const auth = `-H 'Authorization: Bearer ${token}'`;
  say(
    `The dispense succeeded (${seconds()} s): ${id} sent at ${done.sent_at}, acknowledged at ${done.acked_at}.`,
  );
  say();
  say(`API token of this run: ${token}`);
  say(
    `Machines: SIM-01 … SIM-${MACHINES} (heartbeat every 5 s, a sale every 5 s somewhere, every command acknowledged; ` +
      `${SLOTS} slots of ${SLOT_STOCK} items each, set with PUT …/slots)`,
  );
  say("Try it (each line works as pasted):");
  say(`  curl -sf ${auth} ${api}/api/v1/machines`);
  say(`  curl -sf ${auth} ${api}/api/v1/machines/SIM-01`);
  say(
    `  curl -sf -X POST ${auth} -H 'Content-Type: application/json' -d '{"command":"dispense","payload":{"slot_no":2}}' ${api}/api/v1/machines/SIM-02/commands`,
  );
  say(`  curl -sf ${auth} ${api}/api/v1/commands/${id}`);
  say(
    `  curl -sf -X PUT ${auth} -H 'Content-Type: application/json' -d '{"slots":[{"slot_no":1,"stock":${SLOT_STOCK}},{"slot_no":2,"stock":${SLOT_STOCK}}]}' ${api}/api/v1/machines/SIM-03/slots`,
  );
  say(`  curl -sf ${api}/mqtt/status`);
  say(`API reference: ${api}/docs   Metrics: ${api}/metrics`);
  if (once) {
    await stop();
    Deno.exit(0);
  }
  say("Ctrl-C stops the simulator and the gateway.");
  await gateway.child.status;
  if (!stopping) throw new Error(`the gateway exited:\n${gateway.tail.join("\n")}`);
} catch (error) {
  if (!stopping) {
    console.error(`The demo failed: ${(error as Error).message}`);
    await stop();
    Deno.exit(1);
  }
}

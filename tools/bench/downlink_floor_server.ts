/**
 * @module downlink_floor_server
 * The downlink's floor for the benchmark (scenario 1): the same HTTP request as the gateway's
 * `POST /api/v1/machines/{serial}/commands`, answered by publishing the command QoS 1 to
 * `machine/{serial}/command` and waiting for the PUBACK, with nothing in between: no database row,
 * no queue, no auth, no schema. Whatever latency this shows at a rate is what the machine (the
 * broker, the load generator, the benchmark's HTTP client and the process scheduler on these
 * cores) costs before the gateway does anything. Run by `tools/bench/ceilings.ts`:
 * `deno run --allow-net --allow-env tools/bench/downlink_floor_server.ts <mqtt url> <http port> <mqtt version>`.
 */
import mqtt from "mqtt";

const COMMANDS = /^\/api\/v1\/machines\/([^/]+)\/commands$/;

async function main(args: string[]): Promise<void> {
  const [url, port, version] = args;
  if (!url || !port) throw new Error("usage: downlink_floor_server.ts <mqtt url> <http port> [4|5]");
  const client = mqtt.connect(url, {
    clientId: `bench-floor-${crypto.randomUUID().slice(0, 8)}`,
    protocolVersion: version === "4" ? 4 : 5,
    clean: true,
    reconnectPeriod: 1000,
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  // As the gateway does: without it a publish can wait 40 ms for the broker's delayed ACK.
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  let next = 0;
  const stop = new AbortController();
  Deno.addSignalListener("SIGTERM", () => stop.abort());
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: Number(port),
    signal: stop.signal,
    onListen: () => console.log("listening"),
  }, async (req) => {
    const serial = COMMANDS.exec(new URL(req.url).pathname)?.[1];
    if (req.method !== "POST" || !serial) return new Response("not found", { status: 404 });
    const body = await req.json() as { command?: string; payload?: Record<string, unknown> };
    const messageId = `FLOOR_${next++}`;
    await client.publishAsync(
      `machine/${serial}/command`,
      JSON.stringify({
        target: serial,
        command: body.command,
        payload: body.payload ?? {},
        message_id: messageId,
      }),
      { qos: 1 },
    );
    return Response.json({ message_id: messageId, status: "sent" }, { status: 202 });
  });
  await server.finished;
  await client.endAsync();
}

if (import.meta.main) await main(Deno.args);

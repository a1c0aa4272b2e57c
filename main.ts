/**
 * @module main
 * Entry point: reads the configuration once, starts the gateway and its HTTP server, and owns
 * shutdown (SIGINT / SIGTERM → stop taking messages, finish in-flight jobs, close, exit 0).
 */
import { configure, getConsoleSink, getLogger, getTextFormatter } from "@logtape/logtape";
import { ConfigError, loadConfig } from "./config.ts";
import { Gateway } from "./app/gateway.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      return 2;
    }
    throw error;
  }
  await configure({
    sinks: { console: getConsoleSink({ formatter: getTextFormatter({ value: "bare" }) }) },
    loggers: [
      { category: ["gateway"], lowestLevel: config.logLevel, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  const log = getLogger(["gateway"]);

  const gateway = new Gateway(config);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await gateway.start();
    if (!config.http.apiToken && (config.roles.has("api") || config.roles.has("devices"))) {
      // Printed once, to the console only: set API_TOKEN to keep a token across restarts.
      console.log(
        `API_TOKEN was not set; this run's bearer token for /api/*, /mqtt/status and /metrics: ${gateway.apiToken}`,
      );
    }
    const server = Deno.serve({
      hostname: config.http.host,
      port: config.http.port,
      signal: stop.signal,
      onListen: ({ hostname, port }) => log.info("HTTP API on http://{hostname}:{port}", { hostname, port }),
    }, gateway.app.fetch);
    log.info("Gateway started with roles {roles}", { roles: [...config.roles].join(",") });
    await new Promise<void>((resolve) =>
      stop.signal.addEventListener("abort", () => resolve(), { once: true })
    );
    log.info("Shutting down");
    await server.finished;
    return 0;
  } catch (error) {
    log.fatal("Gateway failed: {error}", { error });
    return 1;
  } finally {
    await gateway.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());

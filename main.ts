/**
 * @module main
 * Entry point: reads the configuration once, starts the gateway and its HTTP server, and owns
 * shutdown (SIGINT / SIGTERM → stop taking messages, finish in-flight jobs, close, exit 0).
 *
 * Scale-in: SIGUSR2 (or SIGTERM with `GATEWAY_DRAIN_ON_STOP=true`) drains first: the gateway
 * leaves its share group, finishes what its MQTT session still holds, ends the session and exits
 * (`Gateway.drain`). `main.ts --drain` (`deno task drain`) starts, drains and exits: run it with a
 * departed gateway's `MQTT_CLIENT_ID` to empty and end the session that gateway left behind.
 */
import { configure, getConsoleSink, getLogger, getTextFormatter, jsonLinesFormatter } from "@logtape/logtape";
import { ConfigError, loadConfig } from "./config.ts";
import { Gateway } from "./app/gateway.ts";
import { environment } from "./launcher/env_file.ts";
import { reasonOf } from "./app/service_check.ts";
import { StartupError } from "./lib/errors.ts";

async function main(args: readonly string[]): Promise<number> {
  const drainOnly = args.includes("--drain");
  let config;
  try {
    // `.env` too when this process may read it (`deno task dev`); the launcher passes it on otherwise.
    config = loadConfig(environment());
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      return 2;
    }
    throw error;
  }
  await configure({
    sinks: {
      console: getConsoleSink({
        formatter: config.logFormat === "json" ? jsonLinesFormatter : getTextFormatter({ value: "bare" }),
      }),
    },
    loggers: [
      { category: ["gateway"], lowestLevel: config.logLevel, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  const log = getLogger(["gateway"]);

  const gateway = new Gateway(config);
  const stop = new AbortController();
  let draining: Promise<void> | undefined;
  const drainThenStop = () => {
    draining ??= gateway.drain().then(() => stop.abort(), () => stop.abort());
  };
  const onSignal = () => stop.abort();
  const onTerm = config.drainOnStop ? drainThenStop : onSignal;
  const posix = Deno.build.os !== "windows";
  Deno.addSignalListener("SIGINT", onSignal);
  if (posix) {
    Deno.addSignalListener("SIGTERM", onTerm);
    Deno.addSignalListener("SIGUSR2", drainThenStop);
  }
  try {
    await gateway.start();
    if (drainOnly) {
      log.info("--drain: taking over the session of {clientId} to drain and end it", {
        clientId: config.mqtt.clientId,
      });
      const drained = await gateway.drain();
      return drained ? 0 : 1;
    }
    if (!config.http.apiToken && (config.roles.has("api") || config.roles.has("devices"))) {
      // Printed once, to the console only: set API_TOKEN to keep a token across restarts.
      const line =
        `API_TOKEN was not set; this run's bearer token for /api/*, /mqtt/status and /metrics: ${gateway.apiToken}`;
      console.log(config.logFormat === "json" ? JSON.stringify({ level: "INFO", message: line }) : line);
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
    gateway.endStreams(); // open event streams would keep the server from finishing
    await server.finished;
    return 0;
  } catch (error) {
    // One line per problem for whoever starts it; the stack only when asked for (LOG_LEVEL=debug).
    if (error instanceof StartupError) {
      for (const problem of error.problems) log.fatal(problem);
    } else log.fatal("Gateway failed: {message}", { message: reasonOf(error) });
    log.debug("{error}", { error });
    return 1;
  } finally {
    await gateway.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    if (posix) {
      Deno.removeSignalListener("SIGTERM", onTerm);
      Deno.removeSignalListener("SIGUSR2", drainThenStop);
    }
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

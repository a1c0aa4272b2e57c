/**
 * @module console_fixture
 * A gateway in embedded mode (its own broker, SQLite queue and database in a temporary DATA_DIR)
 * served over HTTP on a free port, plus Debian's chromium driven by playwright-core: what the
 * console's browser tests and `deno task screenshots` both run against. The browser is never
 * downloaded: it is /usr/bin/chromium (`apt-get install -y chromium`).
 */
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import fs from "node:fs";
import type { Browser, Page } from "playwright-core";
import { Gateway } from "../../app/gateway.ts";
import { loadConfig } from "../../config.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface ConsoleGateway {
  gateway: Gateway;
  /** `http://127.0.0.1:port` */
  base: string;
  dataDir: string;
  apiToken: string;
  viewerToken: string;
  brokerUrl: string;
  /** `POST /api/v1/machines/{serial}/token` with the API token: the machine's MQTT password. */
  issueToken(serial: string): Promise<string>;
  /** `PUT /api/v1/machines/{serial}/slots` with the API token: sets those slots' stock. */
  setStock(serial: string, slots: { slot_no: number; stock: number }[]): Promise<void>;
  /** A simulated machine connected with its serial and token; answers commands when `ackCommands`. */
  machine(serial: string, token: string, options?: { ackCommands?: boolean }): Promise<MqttClient>;
  close(): Promise<void>;
}

export async function startConsoleGateway(env: Record<string, string> = {}): Promise<ConsoleGateway> {
  const dataDir = await Deno.makeTempDir({ prefix: "gw_console_e2e_" });
  const apiToken = "console-e2e-api-token-0123456789";
  const viewerToken = "console-e2e-viewer-token-0123456789";
  const gateway = new Gateway(loadConfig({
    DATA_DIR: dataDir,
    MQTT_LISTEN_PORT: "0",
    API_TOKEN: apiToken,
    VIEWER_TOKEN: viewerToken,
    LOG_LEVEL: "error",
    JOB_RETRY_BASE_MS: "50",
    ...env,
  }));
  await gateway.start();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, gateway.app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const clients: MqttClient[] = [];
  return {
    gateway,
    base,
    dataDir,
    apiToken,
    viewerToken,
    brokerUrl: gateway.embeddedBroker!.url,
    async issueToken(serial) {
      const res = await fetch(`${base}/api/v1/machines/${serial}/token`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiToken}` },
      });
      const body = await res.json();
      if (res.status !== 201) throw new Error(`token for ${serial}: ${res.status} ${JSON.stringify(body)}`);
      return body.api_token as string;
    },
    async setStock(serial, slots) {
      const res = await fetch(`${base}/api/v1/machines/${serial}/slots`, {
        method: "PUT",
        headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
        body: JSON.stringify({ slots }),
      });
      const body = await res.json();
      if (res.status !== 200) throw new Error(`stock of ${serial}: ${res.status} ${JSON.stringify(body)}`);
    },
    async machine(serial, token, options = {}) {
      const client = await mqtt.connectAsync(gateway.embeddedBroker!.url, {
        clientId: serial,
        username: serial,
        password: token,
        reconnectPeriod: 0,
        protocolVersion: 4,
      });
      clients.push(client);
      if (options.ackCommands) {
        client.on("message", (_topic, payload) => {
          const command = JSON.parse(payload.toString());
          client.publish(
            `machine/${serial}/command/ack`,
            JSON.stringify({ message_id: command.message_id, status: "ok", detail: { dispensed: true } }),
            { qos: 1 },
          );
        });
        await client.subscribeAsync(`machine/${serial}/command`, { qos: 1 });
      }
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
      gateway.endStreams();
      await server.shutdown();
      await gateway.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * playwright-core, imported on first use: its top-level code probes WSL files under /proc, which Deno
 * allows only with --allow-all, so those probes (only those) answer "no" instead of throwing. The
 * tests then run with `deno task test`'s own permissions.
 */
async function playwright(): Promise<typeof import("playwright-core")> {
  const existsSync = fs.existsSync;
  fs.existsSync = ((path: fs.PathLike) => {
    try {
      return existsSync(path);
    } catch (error) {
      if (String(path).startsWith("/proc/") || String(path).startsWith("/run/")) return false;
      throw error;
    }
  }) as typeof fs.existsSync;
  return await import("playwright-core");
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await playwright();
  return await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Signs in through the form and waits for the fleet page. */
export async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/console`);
  await page.waitForURL(/\/console\/sign-in/);
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(`${base}/console`), page.click("button[type=submit]")]);
}

/** Publishes one QoS 1 message as JSON. */
export async function publish(client: MqttClient, topic: string, body: unknown): Promise<void> {
  await client.publishAsync(topic, JSON.stringify(body), { qos: 1 });
}

export const queueDbPath = (dataDir: string) => join(dataDir, "queue.db");

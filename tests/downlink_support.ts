/**
 * @module downlink_support
 * Helpers for the downlink and auth end-to-end tests: authenticated HTTP calls through
 * `gateway.app.request`, a simulated machine that records what arrives on its command topic,
 * and a Laravel-style producer pushing onto the outgoing list.
 */
import type { MqttClient } from "mqtt";
import { Redis } from "ioredis";
import type { Gateway } from "../app/gateway.ts";
import { machineClient, SERVICES, uniqueId, waitFor } from "./support.ts";

export interface ApiResponse {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Calls the gateway's HTTP API with its bearer token (or `token`). */
export async function api(
  gateway: Gateway,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = gateway.apiToken,
): Promise<ApiResponse> {
  const issued = /^\/api\/v1\/machines\/([^/]+)\/token$/.exec(path);
  if (issued && method === "POST") tokenSerials.add(decodeURIComponent(issued[1]!));
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await gateway.app.request(path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

const tokenSerials = new Set<string>();

/** Removes the `machine_auth:` / `machine_acl:` keys of every machine a test issued a token to. */
export async function dropMachineKeys(): Promise<void> {
  if (tokenSerials.size === 0) return;
  const redis = new Redis(SERVICES.redis);
  try {
    await redis.del(...[...tokenSerials].flatMap((s) => [`machine_auth:${s}`, `machine_acl:${s}`]));
    tokenSerials.clear();
  } finally {
    redis.disconnect();
  }
}

/** A valid serial unique to this test run, e.g. `M-001-lq2x8a9f3k`. */
export function testSerial(base = "M-001"): string {
  return uniqueId(`${base}-`);
}

/** A machine subscribed to its command topic; `messages` holds each payload as received. */
export async function commandListener(serial: string): Promise<{
  client: MqttClient;
  messages: string[];
  close: () => Promise<void>;
}> {
  const client = await machineClient(SERVICES.mqtt, { protocolVersion: 5, clientId: uniqueId("listener-") });
  const messages: string[] = [];
  client.on("message", (topic, payload) => {
    if (topic === `machine/${serial}/command`) messages.push(new TextDecoder().decode(payload));
  });
  await client.subscribeAsync(`machine/${serial}/command`, { qos: 1 });
  return { client, messages, close: () => client.endAsync() };
}

/** What a Laravel `MqttCommandService` does: `RPUSH` the JSON onto the outgoing list. */
export async function rpush(queue: string, ...elements: (string | Record<string, unknown>)[]): Promise<void> {
  const redis = new Redis(SERVICES.redis);
  try {
    await redis.rpush(queue, ...elements.map((e) => typeof e === "string" ? e : JSON.stringify(e)));
  } finally {
    redis.disconnect();
  }
}

/** Waits until `GET /api/v1/commands/{id}` shows `status`; returns the command. */
export async function waitForStatus(gateway: Gateway, messageId: string, status: string, timeoutMs = 10_000) {
  let last = "";
  return await waitFor(
    async () => {
      const r = await api(gateway, "GET", `/api/v1/commands/${messageId}`);
      last = r.json?.status;
      return r.status === 200 && r.json.status === status ? r.json : null;
    },
    timeoutMs,
    `command ${messageId} to be ${status} (last: ${last})`,
  );
}

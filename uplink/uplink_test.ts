import assert from "node:assert/strict";
import type { IPublishPacket } from "mqtt";
import { formatReceivedAt } from "../contract/incoming_job.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import type { AckHandler, MqttConnection } from "../mqtt/mqtt_connection.ts";
import {
  MAX_PAYLOAD_DEPTH,
  nestedDeeperThan,
  parseUplinkTopic,
  startUplink,
  uplinkFilters,
} from "./uplink.ts";

Deno.test("uplink topics map to job types; the serial comes from the topic", () => {
  assert.deepEqual(parseUplinkTopic("machine/M-001/heartbeat"), { serialNo: "M-001", type: "heartbeat" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/error"), { serialNo: "M-001", type: "error" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/transaction"), { serialNo: "M-001", type: "transaction" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/command/ack"), { serialNo: "M-001", type: "command_ack" });
});

Deno.test("other topics and bad serials are rejected with a reason", () => {
  assert.deepEqual(parseUplinkTopic("machine/M-001/command"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machine/M-001"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machines/M-001/heartbeat"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machine/M-001/heartbeat/extra"), { reason: "unknown_topic" });
  assert.deepEqual(parseUplinkTopic("machine/M 001/heartbeat"), { reason: "bad_serial" });
  assert.deepEqual(parseUplinkTopic(`machine/${"x".repeat(65)}/heartbeat`), { reason: "bad_serial" });
});

Deno.test("shared subscriptions only when a group is set", () => {
  assert.deepEqual(uplinkFilters("g1"), [
    "$share/g1/machine/+/heartbeat",
    "$share/g1/machine/+/error",
    "$share/g1/machine/+/transaction",
    "$share/g1/machine/+/command/ack",
  ]);
  assert.equal(uplinkFilters("")[0], "machine/+/heartbeat");
});

Deno.test("received_at follows the clock from one second to the next (it is formatted once a second)", async () => {
  let handler: AckHandler | undefined;
  const connection = {
    handleAcks: (_matches: unknown, h: AckHandler) => void (handler = h),
    onMessage: () => () => {},
    subscribe: () => Promise.resolve(),
  } as unknown as MqttConnection;
  const pushed: string[] = [];
  const queue = {
    name: "q",
    push: (...raws: string[]) => {
      pushed.push(...raws);
      return Promise.resolve();
    },
  };
  let clock = new Date("2026-04-14T01:00:00.100Z");
  await startUplink({
    connection,
    queue: queue as unknown as ReliableQueue,
    maxPayloadBytes: 1024,
    shareGroup: "",
    signal: new AbortController().signal,
    now: () => clock,
  });
  const send = (at: string) =>
    new Promise<void>((resolve) => {
      clock = new Date(at);
      handler!("machine/M-1/heartbeat", new TextEncoder().encode("{}"), {} as IPublishPacket, resolve);
    });
  await send("2026-04-14T01:00:00.100Z");
  await send("2026-04-14T01:00:00.900Z");
  await send("2026-04-14T01:00:01.000Z");
  assert.deepEqual(pushed.map((raw) => JSON.parse(raw).received_at), [
    formatReceivedAt(new Date("2026-04-14T01:00:00Z")),
    formatReceivedAt(new Date("2026-04-14T01:00:00Z")),
    formatReceivedAt(new Date("2026-04-14T01:00:01Z")),
  ]);
});

Deno.test("payload nesting: up to MAX_PAYLOAD_DEPTH levels of objects and arrays, not one more", () => {
  const nested = (levels: number): unknown => levels === 1 ? {} : { a: [nested(levels - 2)] };
  assert.equal(nestedDeeperThan({ temperature: 25.5, tags: ["a"] }, MAX_PAYLOAD_DEPTH), false);
  assert.equal(nestedDeeperThan(JSON.parse("[".repeat(31) + "]".repeat(31)), MAX_PAYLOAD_DEPTH), false);
  assert.equal(nestedDeeperThan(JSON.parse("[".repeat(32) + "]".repeat(32)), MAX_PAYLOAD_DEPTH), true);
  assert.equal(nestedDeeperThan(nested(31), MAX_PAYLOAD_DEPTH), false);
  assert.equal(nestedDeeperThan(nested(33), MAX_PAYLOAD_DEPTH), true);
  assert.equal(
    nestedDeeperThan(JSON.parse("[".repeat(20_000) + "]".repeat(20_000)), MAX_PAYLOAD_DEPTH),
    true,
  );
});

import assert from "node:assert/strict";
import type { IPublishPacket } from "mqtt";
import { formatReceivedAt } from "../contract/incoming_job.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import type { AckHandler, MqttConnection } from "../mqtt/mqtt_connection.ts";
import { startUplink } from "./uplink.ts";

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

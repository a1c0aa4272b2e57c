/**
 * The gateway's MQTT connection leaves mqtt-packet's number cache unmade: 65,536 two-byte Buffers
 * built at the first packet written and kept for life, 6.5 MB of an idle gateway's ~32 MB of live
 * heap (V8 then lets a busy heap grow to 2.5x its live data). Its own file: the cache is a
 * module-wide switch, and mqtt.js clients made with the defaults (as other tests' machines are)
 * would build it first.
 */
import assert from "node:assert/strict";
import numbers from "mqtt-packet/numbers.js";
import writeToStream from "mqtt-packet/writeToStream.js";
import { mqttConnectionOptions, uniqueId, waitFor } from "../tests/support.ts";
import { MqttConnection } from "./mqtt_connection.ts";

Deno.test("the MQTT connection writes packets without mqtt-packet's 65,536-Buffer number cache", async () => {
  const topic = `test/${uniqueId("numbers")}`;
  const received: string[] = [];
  const connection = new MqttConnection(mqttConnectionOptions({ clientId: uniqueId("numbers-") }));
  try {
    connection.onMessage((_t, payload) => received.push(new TextDecoder().decode(payload)));
    await connection.waitConnected();
    await connection.subscribe([topic], 1);
    // QoS 1 packets carry a two-byte message id and topic length: the numbers the cache held.
    for (let i = 0; i < 3; i++) await connection.client.publishAsync(topic, `m${i}`, { qos: 1 });
    await waitFor(() => received.length === 3, 5000, "the three messages");
    assert.deepEqual(received, ["m0", "m1", "m2"], "packets written without the cache arrive whole");
    assert.equal(writeToStream.cacheNumbers, false);
    assert.equal(Object.keys(numbers.cache).length, 0, "the number cache was never built");
  } finally {
    await connection.close();
  }
});

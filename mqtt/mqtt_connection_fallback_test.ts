/**
 * An MQTT 3.1.1-only broker (aedes, as the embedded broker runs it) refuses an MQTT 5 CONNECT with
 * "unacceptable protocol version": the connection tries 3.1.1 at once, connects, and works.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { Aedes } from "aedes";
import { MqttConnection } from "./mqtt_connection.ts";

Deno.test("MQTT 5 refused by a 3.1.1 broker: the connection falls back to 3.1.1 at once and works", async () => {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as { port: number };
  const connection = new MqttConnection({
    url: `mqtt://127.0.0.1:${port}`,
    clientId: "fallback-test",
    keepalive: 30,
    protocolVersion: 5,
    clean: false,
    sessionExpiry: 300,
    // A fallback that waited for the backoff would miss the 5 s deadline below.
    reconnectDelayMs: 60_000,
    reconnectMaxDelayMs: 60_000,
  });
  try {
    await connection.waitConnected(AbortSignal.timeout(5000));
    const status = connection.status();
    assert.equal(status.protocolVersion, 4);
    assert.equal(status.reconnects, 1);
    const got = new Promise<string>((resolve) =>
      connection.onMessage((_t, payload) => resolve(new TextDecoder().decode(payload)))
    );
    await connection.subscribe(["fallback/echo"], 1);
    await connection.publish("fallback/echo", "hello", { qos: 1, expirySeconds: 10 });
    assert.equal(await got, "hello");
  } finally {
    await connection.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

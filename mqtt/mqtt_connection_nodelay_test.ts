/**
 * The gateway's MQTT socket has Nagle's algorithm off, on the first connect and on every reconnect:
 * with it on, a command published while the broker had not yet acknowledged (at the TCP level) a
 * PUBACK the gateway just sent waited for the broker's delayed ACK, ~40 ms.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { mqttConnectionOptions, uniqueId, waitFor } from "../tests/support.ts";
import { MqttConnection } from "./mqtt_connection.ts";

Deno.test("the MQTT connection turns Nagle off on each new socket", async () => {
  const calls: { socket: unknown; noDelay: unknown }[] = [];
  const original = net.Socket.prototype.setNoDelay;
  net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
    calls.push({ socket: this, noDelay });
    return original.call(this, noDelay);
  };
  const connection = new MqttConnection(mqttConnectionOptions({ clientId: uniqueId("nodelay-") }));
  try {
    await connection.waitConnected();
    const first = connection.client.stream;
    assert.ok(calls.some((c) => c.socket === first && c.noDelay === true), "the first socket");
    first.destroy(); // a dropped connection: the gateway reconnects on a new socket
    await waitFor(() => connection.client.connected && connection.client.stream !== first, 10_000);
    const second = connection.client.stream;
    assert.ok(calls.some((c) => c.socket === second && c.noDelay === true), "the socket after a reconnect");
  } finally {
    net.Socket.prototype.setNoDelay = original;
    await connection.close();
  }
});

import assert from "node:assert/strict";
import { createMetrics } from "../lib/metrics.ts";
import { EventPublisher } from "./event_publisher.ts";
import { FakeConnection } from "../tests/fakes/fake_connection.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("publishes at once while connected, as JSON with QoS 1", async () => {
  const connection = new FakeConnection();
  const publisher = new EventPublisher({ connection, capacity: 10 });
  assert.equal(publisher.publish("a/b", { proxyid: 1, proxyServiceAlive: "1" }), "sent");
  await tick();
  assert.deepEqual(connection.published, [{
    topic: "a/b",
    payload: '{"proxyid":1,"proxyServiceAlive":"1"}',
    qos: 1,
  }]);
  assert.equal(publisher.stats().published, 1);
  assert.equal(publisher.stats().in_flight, 0);
  publisher.close();
});

Deno.test("buffers while disconnected and sends in order on reconnect, before newer events", async () => {
  const connection = new FakeConnection(false);
  const publisher = new EventPublisher({ connection, capacity: 10 });
  for (let i = 0; i < 3; i++) assert.equal(publisher.publish("t", { i }), "buffered");
  assert.equal(connection.published.length, 0);
  assert.equal(publisher.buffered, 3);
  connection.restore();
  assert.equal(publisher.publish("t", { i: 3 }), "sent");
  assert.deepEqual(connection.payloads("t").map((p) => p.i), [0, 1, 2, 3]);
  assert.equal(publisher.buffered, 0);
  await tick();
  assert.equal(publisher.stats().published, 4);
  publisher.close();
});

Deno.test("connected before the connect event: kept events go first and nothing is dropped", () => {
  const connection = new FakeConnection(false);
  const publisher = new EventPublisher({ connection, capacity: 2 });
  publisher.publish("t", { i: 0 });
  publisher.publish("t", { i: 1 });
  connection.connected = true; // the client says connected; its "connect" event is still to come
  assert.equal(publisher.publish("t", { i: 2 }), "sent");
  assert.deepEqual(connection.payloads("t").map((p) => p.i), [0, 1, 2]);
  assert.equal(publisher.dropped, 0);
  connection.restore();
  assert.equal(connection.published.length, 3);
  publisher.close();
});

Deno.test("a full buffer drops the oldest and counts each drop", async () => {
  const metrics = createMetrics();
  const connection = new FakeConnection(false);
  const publisher = new EventPublisher({ connection, capacity: 3, metrics });
  for (let i = 0; i < 8; i++) publisher.publish("t", { i });
  assert.equal(publisher.buffered, 3);
  assert.equal(publisher.dropped, 5);
  const counted = await metrics.devicesEventsDropped.get();
  assert.equal(counted.values[0]?.value, 5);
  connection.restore();
  assert.deepEqual(connection.payloads("t").map((p) => p.i), [5, 6, 7]);
  publisher.close();
});

Deno.test("capacity 0 keeps nothing while disconnected", () => {
  const connection = new FakeConnection(false);
  const publisher = new EventPublisher({ connection, capacity: 0 });
  publisher.publish("t", { i: 1 });
  assert.equal(publisher.buffered, 0);
  assert.equal(publisher.dropped, 1);
  connection.restore();
  assert.equal(connection.published.length, 0);
  publisher.close();
});

Deno.test("events lost with the connection go back into the buffer in their original order", async () => {
  const connection = new FakeConnection();
  const publisher = new EventPublisher({ connection, capacity: 10 });
  // The broker never acknowledges these; the connection then drops and rejects them.
  const rejecters: (() => void)[] = [];
  connection.publishResult = () =>
    new Promise((_, reject) => rejecters.push(() => reject(new Error("closed"))));
  publisher.publish("t", { i: 0 });
  publisher.publish("t", { i: 1 });
  assert.equal(publisher.stats().in_flight, 2);
  connection.drop();
  publisher.publish("t", { i: 2 });
  for (const reject of rejecters) reject();
  await tick();
  assert.equal(publisher.buffered, 3);
  connection.publishResult = () => Promise.resolve();
  connection.published.length = 0;
  connection.restore();
  assert.deepEqual(connection.payloads("t").map((p) => p.i), [0, 1, 2]);
  await tick();
  assert.deepEqual(publisher.stats(), {
    connected: true,
    buffered: 0,
    capacity: 10,
    dropped: 0,
    published: 3,
    in_flight: 0,
    failed: 0,
    requeued: 2,
  });
  publisher.close();
});

Deno.test("a refusal while connected is counted and not retried", async () => {
  const connection = new FakeConnection();
  const publisher = new EventPublisher({ connection, capacity: 10 });
  connection.publishResult = () => Promise.reject(new Error("not authorized"));
  publisher.publish("t", { i: 0 });
  await tick();
  assert.equal(publisher.stats().failed, 1);
  assert.equal(publisher.buffered, 0);
  publisher.close();
});

Deno.test("close is idempotent, stops listening, and refuses new events", () => {
  const connection = new FakeConnection(false);
  const publisher = new EventPublisher({ connection, capacity: 10 });
  publisher.publish("t", {});
  assert.equal(connection.listenerCount, 1);
  publisher.close();
  publisher.close();
  assert.equal(connection.listenerCount, 0);
  assert.equal(publisher.buffered, 0);
  assert.throws(() => publisher.publish("t", {}), /closed/);
});

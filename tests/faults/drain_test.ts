/**
 * @module drain_test
 * Scale-in on a private mosquitto: three gateways share the uplink (one `$share` group, one
 * Redis queue). Mid-run, gateway b gets SIGUSR2 (the drain): it leaves the group, finishes what
 * its session still delivers, ends its session and exits 0. Gateway c is killed instead, as a
 * node that vanished: its share keeps going into its session, where it waits. `main.ts --drain`
 * under c's client id takes that session over, stores what waited, ends it and exits. At the end
 * every transaction is stored exactly once and neither b nor c has a session left at the broker.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import {
  assertLedgerExact,
  GatewayProcess,
  scenario,
  servicesSettings,
  startGateway,
  startServices,
  transactionFleet,
  waitFor,
} from "./support.ts";

const MESSAGES = 6000;
const MACHINES = 20;

/** Whether the broker still keeps a session for `clientId` (a probe that leaves none behind). */
async function sessionPresent(url: string, clientId: string): Promise<boolean> {
  const client = mqtt.connect(url, {
    clientId,
    clean: false,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: 0 },
    reconnectPeriod: 0,
  });
  client.on("error", () => {});
  try {
    return await new Promise<boolean>((resolve, reject) => {
      client.once("connect", (connack) => resolve(connack.sessionPresent));
      client.once("close", () => reject(new Error(`probe of ${clientId} closed`)));
    });
  } finally {
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  }
}

Deno.test("a drained gateway leaves its share group and its session; a departed one's session is drained by --drain", async () => {
  await scenario("drain", async (ctx) => {
    const services = await startServices(ctx, "drain");
    const { dir, broker, redis, db } = services;
    const shared = servicesSettings(services);
    const id = (name: string) => ({ ...shared, clientId: `${shared.clientId}-${name}` });
    const a = await startGateway(ctx, dir.path, id("a"), "gateway-a");
    const b = await startGateway(ctx, dir.path, id("b"), "gateway-b");
    const c = await startGateway(ctx, dir.path, id("c"), "gateway-c");

    const { fleet, messages } = await transactionFleet(ctx, broker.url, "FD", MACHINES, MESSAGES);
    // The second half is sent only once c is dead, so c's share of it must wait in c's session
    // (waiting for "half stored" alone let a slow box send everything before c died).
    const firstHalf = messages.slice(0, MESSAGES / 2);
    const sending = fleet.send(firstHalf, 5);

    await waitFor("a quarter stored", async () => await db.transactionCount() >= MESSAGES / 4, {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    const receivedB = await b.metric("gateway_mqtt_received_total", { type: "transaction" });
    const drained = await b.signalAndWait("SIGUSR2");
    assert.equal(drained.code, 0, `gateway b exits 0 after the drain: ${await b.logTail(20)}`);
    assert.match(await b.logTail(40), /Drained: nothing arrived/);
    assert.ok(receivedB > 0, "b had a share before it left");

    await waitFor("half stored", async () => await db.transactionCount() >= MESSAGES / 2, {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    await sending;
    await c.kill();
    await fleet.send(messages.slice(MESSAGES / 2), 5);

    // c's share since its death waits in its session (and its worker's leases in its processing
    // lists): a alone cannot finish the run.
    let last = -1;
    await waitFor("the count to stop growing", async () => {
      const now = await db.transactionCount();
      const still = now === last;
      last = now;
      return still;
    }, { timeoutMs: 60_000, intervalMs: 1500 });
    const stranded = MESSAGES - last;
    assert.ok(stranded > 0, "messages wait in the departed gateway's session");
    assert.equal(await sessionPresent(broker.url, id("b").clientId), false, "b's session is gone");

    // A gateway started under c's client id with --drain takes the session over and empties it
    // (and its worker, with c's consumer ids, puts c's leases back).
    const run = await GatewayProcess.run(dir.path, id("c"), "gateway-c-drain", ["--drain"]);
    assert.equal(run.code, 0, `--drain exits 0: ${run.log}`);
    await assertLedgerExact(db, redis, shared.incomingQueue, messages);
    assert.equal(await sessionPresent(broker.url, id("c").clientId), false, "c's session is gone");
    console.log(`[drain] b received ${receivedB} before it drained; ${stranded} waited in c's session`);
    assert.ok(a.running);
  });
});

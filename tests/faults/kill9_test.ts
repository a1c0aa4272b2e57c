/**
 * @module kill9_test
 * Fault injection: `kill -9` the gateway at random points of a 20,000-transaction run and restart
 * it (same client id, so the same persistent session and the same worker processing lists). The
 * machines keep publishing while it is down. At the end the database holds exactly the sent
 * transactions: none lost, none doubled (QoS 1 redeliveries and recovered jobs apply once).
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  delay,
  faultSeed,
  GatewayProcess,
  scenario,
  seededRandom,
  servicesSettings,
  startServices,
  transactionFleet,
  waitFor,
} from "./support.ts";

const MESSAGES = 20_000;
const MACHINES = 20;
const KILLS = 3;

Deno.test("kill -9 of the gateway at random points loses and doubles nothing", async () => {
  await scenario("kill9", async (ctx) => {
    const { defer, logs } = ctx;
    const random = seededRandom(faultSeed("kill9"));
    const services = await startServices(ctx, "kill9");
    const { dir, broker, redis, db } = services;

    const settings = servicesSettings(services);
    let gateway = await GatewayProcess.start(dir.path, settings, "gateway-0");
    defer(() => gateway.stop());
    logs(() => gateway.logTail());

    const { fleet, messages } = await transactionFleet(ctx, broker.url, "FK", MACHINES, MESSAGES);

    // Kill points: random amounts of stored progress, plus a random few ms so that the kill
    // lands anywhere in the pipeline (receiving, pushing, leasing, writing the batch, acking).
    const thresholds = Array.from({ length: KILLS }, () => Math.floor(MESSAGES * (0.05 + 0.85 * random())))
      .sort((x, y) => x - y);
    const sending = fleet.send(messages);
    const kills: string[] = [];
    for (const [i, threshold] of thresholds.entries()) {
      await waitFor(
        `${threshold} transactions stored before kill ${i + 1}`,
        async () => await db.transactionCount() >= threshold,
        { timeoutMs: 60_000, intervalMs: 20 },
      );
      await delay(Math.floor(random() * 150));
      const stored = await db.transactionCount();
      await gateway.kill();
      kills.push(`kill ${i + 1} at ${stored} stored, ${fleet.acked} acked by the broker`);
      await delay(Math.floor(random() * 800));
      gateway = await GatewayProcess.start(dir.path, settings, `gateway-${i + 1}`);
    }
    await sending;
    console.log(`[kill9] ${kills.join("; ")}`);

    const ledger = await assertLedgerExact(db, redis, settings.incomingQueue, messages, 90_000);
    assert.equal(ledger.count, MESSAGES);
    assert.equal(kills.length, KILLS);
    const { dead } = await redis.depth(settings.incomingQueue);
    assert.equal(dead, 0, "nothing dead-lettered");
    assert.equal(await gateway.healthz(), 200);
  });
});

// A kill at a random point rarely lands in the instant between a PUBACK and the push it should
// follow, and the reset of a killed connection makes the broker drop PUBACKs it has not read yet.
// So the rule "PUBACK only once stored" gets its own deterministic check: the queue hangs, machines
// publish, the gateway is killed while it holds their messages, and none may be missing.
Deno.test("kill -9 while the queue hangs loses nothing: the PUBACK waits for the push", async () => {
  await scenario("kill9_hung_queue", async (ctx) => {
    const { defer, logs } = ctx;
    const services = await startServices(ctx, "kill9-hung");
    const { dir, broker, redis, db } = services;
    defer(() => redis.thaw()); // a frozen redis-server must be able to exit

    const settings = servicesSettings(services);
    let gateway = await GatewayProcess.start(dir.path, settings, "gateway-0");
    defer(() => gateway.stop());
    logs(() => gateway.logTail());

    const { fleet, messages } = await transactionFleet(ctx, broker.url, "FH", 5, 600);

    await fleet.send(messages.slice(0, 100));
    await waitFor("the first 100 stored", async () => await db.transactionCount() === 100);
    redis.freeze();
    await fleet.send(messages.slice(100)); // acknowledged by the broker, queued for the gateway
    await waitFor(
      "the gateway to hold messages it cannot store",
      async () => await gateway.metric("gateway_mqtt_received_total", { type: "transaction" }) > 100,
    );
    await delay(500);
    await gateway.kill();
    redis.thaw();
    gateway = await GatewayProcess.start(dir.path, settings, "gateway-1");
    await assertLedgerExact(db, redis, settings.incomingQueue, messages, 60_000);
  });
});

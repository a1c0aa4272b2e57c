/**
 * @module two_gateways_test
 * Fault injection: two gateway processes at once on one broker, same `$share` group, different
 * client ids, both consuming the same Redis queue. The broker splits the load (both get a share),
 * and nothing is processed twice: each transaction is received by exactly one gateway, finished
 * as a job exactly once, and stored exactly once.
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  scenario,
  servicesSettings,
  startGateway,
  startServices,
  transactionFleet,
} from "./support.ts";

const MESSAGES = 4000;
const MACHINES = 10;

Deno.test("two gateways on one broker split the load and process nothing twice", async () => {
  await scenario("two_gateways", async (ctx) => {
    const services = await startServices(ctx, "two");
    const { dir, broker, redis, db } = services;

    const shared = servicesSettings(services);
    const a = await startGateway(ctx, dir.path, { ...shared, clientId: `${shared.clientId}-a` }, "gateway-a");
    const b = await startGateway(ctx, dir.path, { ...shared, clientId: `${shared.clientId}-b` }, "gateway-b");

    const { fleet, messages } = await transactionFleet(ctx, broker.url, "FT", MACHINES, MESSAGES);
    await fleet.send(messages);

    await assertLedgerExact(db, redis, shared.incomingQueue, messages);

    const receivedA = await a.metric("gateway_mqtt_received_total", { type: "transaction" });
    const receivedB = await b.metric("gateway_mqtt_received_total", { type: "transaction" });
    const doneA = await a.metric("gateway_jobs_total", { type: "transaction", outcome: "done" });
    const doneB = await b.metric("gateway_jobs_total", { type: "transaction", outcome: "done" });
    console.log(`[two_gateways] received a=${receivedA} b=${receivedB}; jobs done a=${doneA} b=${doneB}`);
    // Shared subscription: each message goes to exactly one member, and both get a share.
    assert.equal(receivedA + receivedB, MESSAGES, "every message received by exactly one gateway");
    assert.ok(
      receivedA > 0 && receivedB > 0,
      `both gateways received a share (a=${receivedA}, b=${receivedB})`,
    );
    // One queue, two sets of workers: each job leased and finished once in all.
    assert.equal(doneA + doneB, MESSAGES, "every job finished exactly once across both gateways");
    assert.ok(doneA > 0 && doneB > 0, `both gateways' workers took jobs (a=${doneA}, b=${doneB})`);
    assert.equal((await redis.depth(shared.incomingQueue)).dead, 0, "no dead letters");
    const statusA = await a.status();
    const statusB = await b.status();
    assert.equal(statusA.counters.received + statusB.counters.received, MESSAGES);
    assert.equal(statusA.counters.dead_lettered + statusB.counters.dead_lettered, 0);
  });
});

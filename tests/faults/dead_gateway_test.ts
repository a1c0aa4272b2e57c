/**
 * @module dead_gateway_test
 * Fault injection: a gateway gone for good. Two gateways share the uplink (one `$share` group) and
 * the queue. Gateway A reaches the database through a TCP proxy that the test cuts, so A's workers
 * sit on the jobs they have leased, as a gateway does mid-batch; then A is `kill -9`ed and never
 * started again, under its id or any other. No process restarts, so nothing runs `recover()`:
 * B's periodic sweep must put A's jobs back once A's liveness lapses (`QUEUE_CONSUMER_TTL_MS` is
 * 2 s here), and every sale must land exactly once.
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  GatewayProcess,
  MYSQL_ADDRESS,
  scenario,
  servicesSettings,
  startGateway,
  startServices,
  TcpProxy,
  transactionFleet,
  waitFor,
} from "./support.ts";

const MESSAGES = 2000;
const MACHINES = 10;
const TTL_MS = 2000;

Deno.test("a gateway killed for good: the other puts back the jobs it held, and every sale lands once", async () => {
  await scenario("dead_gateway", async (ctx) => {
    const { defer, logs } = ctx;
    const services = await startServices(ctx, "dead");
    const { dir, broker, redis, db } = services;
    const proxy = new TcpProxy(MYSQL_ADDRESS);
    defer(() => proxy.close());

    const shared = servicesSettings(services);
    const extra = { QUEUE_CONSUMER_TTL_MS: String(TTL_MS), WORKER_BATCH_SIZE: "50" };
    const queue = shared.incomingQueue;
    const b = await startGateway(
      ctx,
      dir.path,
      { ...shared, clientId: `${shared.clientId}-b`, extra },
      "gateway-b",
    );
    const aId = `${shared.clientId}-a`;
    const a = await GatewayProcess.start(
      dir.path,
      { ...shared, clientId: aId, databaseUrl: db.url(proxy.port), extra },
      "gateway-a",
    );
    defer(() => a.stop());
    logs(() => a.logTail());

    // A's database hangs: its workers' batches wait on a connection that never answers.
    proxy.cut();
    const { fleet, messages } = await transactionFleet(ctx, broker.url, "FG", MACHINES, MESSAGES);
    await fleet.send(messages);
    // Everything is in Redis before the kill, so nothing waits in A's MQTT session (that is the
    // broker's business, see drain_test.ts): what A takes with it is only what it leased.
    const queued = async () =>
      await a.metric("gateway_mqtt_queued_total", { type: "transaction" }) +
      await b.metric("gateway_mqtt_queued_total", { type: "transaction" });
    await waitFor("every sale in the queue", async () => await queued() === MESSAGES, { timeoutMs: 30_000 });

    // What A's consumers hold: leased (processing) or moved by a blocking wait (woken).
    const heldByA = () =>
      redis.with(async (r) => {
        const keys = [
          ...await r.keys(`{${queue}}:processing:${aId}:*`),
          ...await r.keys(`{${queue}}:woken:${aId}:*`),
        ];
        let n = 0;
        for (const key of keys) n += await r.llen(key);
        return n;
      });
    await waitFor("gateway A to hold leased jobs", async () => await heldByA() > 0, {
      timeoutMs: 20_000,
      intervalMs: 10,
    });
    await a.kill();
    const killedAt = Date.now();
    const held = await heldByA();
    assert.ok(held > 0, "A died holding jobs");

    await assertLedgerExact(db, redis, queue, messages, 30_000);
    const took = Date.now() - killedAt;
    console.log(`[dead_gateway] A died holding ${held} jobs; all ${MESSAGES} sales stored ${took} ms later`);
    // No bound on `took` here (time is the bench's business): without the sweep, nothing but a
    // restart of A would ever put its jobs back, and the ledger above would time out.
    assert.equal(await heldByA(), 0, "nothing left in A's lists");
    assert.equal(await b.metric("gateway_queue_reclaimed_total", { queue }), held, "B put back what A held");
    assert.match(
      await b.logTail(400),
      new RegExp(`Put back \\d+ jobs of ${queue} held by consumer ${aId}:worker:`),
    );
    assert.equal((await redis.depth(queue)).dead, 0, "nothing dead-lettered");
    const consumers = await redis.with((r) => r.smembers(`{${queue}}:consumers`));
    assert.deepEqual(consumers.filter((c) => c.startsWith(`${aId}:`)), [], "A's consumers left the set");
  });
});

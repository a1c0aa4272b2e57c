/**
 * @module db_outage_test
 * Fault injection: the database becomes unreachable for 20 s in the middle of a run. The gateway
 * reaches MariaDB through a TCP proxy the test controls; cutting it resets the open connections and
 * leaves new ones unanswered (a partition, not a polite refusal). Machines keep publishing during
 * the outage: the uplink keeps queueing, jobs wait and retry without using up their attempts, and
 * nothing is dead-lettered. Once the proxy is restored everything lands exactly once.
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  delay,
  fetchText,
  GatewayProcess,
  gatewaySettings,
  MYSQL_ADDRESS,
  scenario,
  startServices,
  TcpProxy,
  transactionFleet,
  waitFor,
} from "./support.ts";

const OUTAGE_MS = 20_000;
const MACHINES = 10;
const BEFORE = 3000;
const DURING = 3000;
const AFTER = 1000;

Deno.test("a 20 s database outage dead-letters nothing and loses nothing", async () => {
  await scenario("db_outage", async (ctx) => {
    const { defer, logs } = ctx;
    const { dir, broker, redis, db } = await startServices(ctx, "db");
    const proxy = new TcpProxy(MYSQL_ADDRESS);
    defer(() => proxy.close());

    // JOB_MAX_ATTEMPTS=1: a transient failure counted as an attempt would be dead-lettered at once.
    const settings = gatewaySettings({
      mqttUrl: broker.url,
      redisUrl: redis.url,
      databaseUrl: db.url(proxy.port),
      extra: { JOB_MAX_ATTEMPTS: "1" },
    });
    const gateway = await GatewayProcess.start(dir.path, settings);
    defer(() => gateway.stop());
    logs(() => gateway.logTail(60));

    const { fleet, messages } = await transactionFleet(
      ctx,
      broker.url,
      "FD",
      MACHINES,
      BEFORE + DURING + AFTER,
    );

    // Cut while the first part is being written, so that batches fail half-way.
    const first = fleet.send(messages.slice(0, BEFORE));
    await waitFor("the first transactions stored", async () => await db.transactionCount() >= BEFORE / 3, {
      timeoutMs: 30_000,
      intervalMs: 10,
    });
    proxy.cut();
    const cutAt = Date.now();
    const storedAtCut = await db.transactionCount();
    await first;
    await fleet.send(messages.slice(BEFORE, BEFORE + DURING));

    // While cut: the process is up, readiness says the database is down, the uplink still queues.
    assert.equal(await gateway.healthz(), 200);
    const ready = await fetchText(`${gateway.base}/readyz`, 5000);
    assert.equal(ready.status, 503, `readyz during the outage: ${ready.body}`);
    assert.equal(JSON.parse(ready.body).checks.database.ok, false);
    await waitFor(
      "the uplink to queue everything sent so far",
      async () =>
        await gateway.metric("gateway_mqtt_queued_total", { type: "transaction" }) === BEFORE + DURING,
      {
        timeoutMs: 15_000,
      },
    );
    // A COMMIT already on its way when the cut came may still land; after that, nothing can.
    await delay(Math.max(0, 2000 - (Date.now() - cutAt)));
    const storedDuringCut = await db.transactionCount();

    await delay(Math.max(0, OUTAGE_MS - (Date.now() - cutAt)));
    assert.ok(proxy.isCut);
    assert.equal(await db.transactionCount(), storedDuringCut, "nothing reached the database while cut");
    assert.ok(storedDuringCut < BEFORE + DURING, "jobs were waiting for the database");
    const retried = await gateway.metric("gateway_jobs_total", { type: "transaction", outcome: "retried" });
    proxy.restore();
    console.log(
      `[db_outage] cut ${
        Date.now() - cutAt
      } ms at ${storedAtCut} stored; ${storedDuringCut} stored while cut; ` +
        `${retried} retries during the outage`,
    );
    assert.ok(retried > 0, "jobs were retried during the outage");

    await fleet.send(messages.slice(BEFORE + DURING));
    await assertLedgerExact(db, redis, settings.incomingQueue, messages, 60_000);
    assert.equal((await redis.depth(settings.incomingQueue)).dead, 0, "nothing dead-lettered");
    assert.equal(await gateway.metric("gateway_dead_lettered_total"), 0);
    assert.ok(gateway.running);
    await waitFor(
      "readyz to recover",
      async () => (await fetchText(`${gateway.base}/readyz`, 5000)).status === 200,
      {
        timeoutMs: 15_000,
      },
    );
  });
});

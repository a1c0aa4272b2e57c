/**
 * @module garbage_flood_test
 * Fault injection: a flood of garbage mixed into good traffic — invalid JSON, non-object JSON,
 * 1 MB payloads, topics the gateway does not serve, bad serials, payloads that fail the job
 * schemas, deeply nested JSON. All good traffic lands exactly once, the process stays up and
 * answers, its resident memory stays under a generous bound, and each kind of garbage is
 * rejected or dead-lettered (and counted in `/mqtt/status`).
 */
import assert from "node:assert/strict";
import {
  assertLedgerExact,
  delay,
  Fleet,
  makeTransactions,
  type Outgoing,
  randomSuffix,
  scenario,
  servicesSettings,
  startGateway,
  startServices,
  waitFor,
} from "./support.ts";

const MACHINES = 10;
const GOOD_TRANSACTIONS = 3000;
const GOOD_HEARTBEATS = 500;
const GARBAGE_CLIENTS = 4;
const INVALID_JSON = 300;
const TOO_LARGE = 100;
const BAD_SERIAL = 200;
const UNSERVED_TOPIC = 100;
const BAD_SCHEMA = 200;
const DEEP = 20;
const RSS_BOUND_KB = 300 * 1024;

function countBy(items: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[item.slice(0, 90)] = (counts[item.slice(0, 90)] ?? 0) + 1;
  return counts;
}

Deno.test("a garbage flood: good traffic lands, the process stays up with bounded memory", async () => {
  await scenario("garbage_flood", async (ctx) => {
    const { defer } = ctx;
    const services = await startServices(ctx, "garbage");
    const { dir, broker, redis, db } = services;

    const settings = servicesSettings(services);
    const gateway = await startGateway(ctx, dir.path, settings);

    const run = randomSuffix(6);
    const serials = Array.from({ length: MACHINES }, (_, i) => `FG${run}-${i}`);
    const garbageIds = Array.from({ length: GARBAGE_CLIENTS }, (_, i) => `garbage-${run}-${i}`);
    const fleet = await Fleet.connect(broker.url, [...serials.map((s) => `machine-${s}`), ...garbageIds]);
    defer(() => fleet.close());

    const transactions = makeTransactions(serials, GOOD_TRANSACTIONS, run);
    const heartbeats: Outgoing[] = Array.from({ length: GOOD_HEARTBEATS }, (_, i) => ({
      machine: i % MACHINES,
      topic: `machine/${serials[i % MACHINES]}/heartbeat`,
      payload: JSON.stringify({ current_page: i % 5, temperature: 20 + (i % 10) }),
    }));

    // Garbage, sent by its own clients (a machine sending garbage still counts as a machine).
    const garbage: Outgoing[] = [];
    const from = (i: number) => MACHINES + (i % GARBAGE_CLIENTS);
    const types = ["transaction", "heartbeat", "error"];
    const invalidJson = [
      "{not json",
      "",
      '{"transaction_id": "x",',
      "\u0000\u0001\u0002",
      "[1, 2",
      "nul",
      "{'a': 1}",
    ];
    const nonObject = ["[1, 2]", '"text"', "42", "null", "true"];
    for (let i = 0; i < INVALID_JSON; i++) {
      const bytes = i % 10 === 9
        ? crypto.getRandomValues(new Uint8Array(64)).map((b) => b | 0x80) // not even UTF-8
        : (i % 2 ? nonObject[i % nonObject.length]! : invalidJson[i % invalidJson.length]!);
      garbage.push({
        machine: from(i),
        topic: `machine/${serials[i % MACHINES]}/${types[i % 3]}`,
        payload: bytes,
      });
    }
    const big = new TextEncoder().encode(`{"transaction_id":"BIG","pad":"${"x".repeat(1024 * 1024)}"}`);
    for (let i = 0; i < TOO_LARGE; i++) {
      garbage.push({
        machine: from(i),
        topic: `machine/${serials[i % MACHINES]}/${types[i % 3]}`,
        payload: big,
      });
    }
    const badSerials = ["bad serial!", "x".repeat(65), "", "机器", "a.b", "semi;colon", 'quote"d'];
    // Not counted as received: rejected on the topic, or never delivered to the gateway.
    const uncounted = new Set<Outgoing>();
    for (let i = 0; i < BAD_SERIAL; i++) {
      uncounted.add({
        machine: from(i),
        topic: `machine/${badSerials[i % badSerials.length]}/${types[i % 3]}`,
        payload: JSON.stringify({ transaction_id: `BAD${i}`, slot_no: 1, quantity: 1, amount: 1 }),
      });
    }
    garbage.push(...uncounted);
    const unserved = [
      "machine/x",
      "foo/bar",
      `machine/${serials[0]}/unknown`,
      `machine/${serials[0]}/transaction/x`,
    ];
    for (let i = 0; i < UNSERVED_TOPIC; i++) {
      const message = { machine: from(i), topic: unserved[i % unserved.length]!, payload: "{}" };
      uncounted.add(message);
      garbage.push(message);
    }
    const badSchema = [
      { topic: "transaction", payload: { transaction_id: 5, slot_no: 1, amount: 1 } },
      { topic: "transaction", payload: { transaction_id: "S", slot_no: "x", amount: 1 } },
      { topic: "transaction", payload: { transaction_id: "S", slot_no: 1, quantity: -3, amount: 1 } },
      { topic: "heartbeat", payload: { temperature: "hot" } },
      { topic: "error", payload: { message: "no code" } },
    ];
    for (let i = 0; i < BAD_SCHEMA; i++) {
      const kind = badSchema[i % badSchema.length]!;
      garbage.push({
        machine: from(i),
        topic: `machine/${serials[i % MACHINES]}/${kind.topic}`,
        payload: JSON.stringify(kind.payload),
      });
    }
    const deep = `{"current_page": 1, "nested": ${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
    for (let i = 0; i < DEEP; i++) {
      garbage.push({ machine: from(i), topic: `machine/${serials[i % MACHINES]}/heartbeat`, payload: deep });
    }

    // Three waves of the same mix, RSS logged after each. Only the peak is asserted: RSS moves by
    // tens of MB with GC and allocator timing (the JS heap stays ~40-70 MB however long it runs).
    const waves = 3;
    const wave = <T>(items: T[], w: number) => items.filter((_, i) => i % waves === w);
    const expectedReceived = GOOD_TRANSACTIONS + GOOD_HEARTBEATS + INVALID_JSON + TOO_LARGE + BAD_SCHEMA +
      DEEP;
    const expectedDead = TOO_LARGE + INVALID_JSON + BAD_SCHEMA;

    const rssBefore = (await gateway.rssKb())!;
    let rssPeak = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rss = await gateway.rssKb();
        if (rss !== undefined) rssPeak = Math.max(rssPeak, rss);
        await delay(100);
      }
    })();
    const rssAfterWave: number[] = [];
    let status;
    try {
      for (let w = 0; w < waves; w++) {
        await Promise.all([
          fleet.send([...wave(transactions, w), ...wave(heartbeats, w)]),
          fleet.send(wave(garbage, w), 4),
        ]);
        // Everything sent so far has reached the gateway and been handled (the broker acked the
        // machines before delivering to the gateway, so wait for the gateway's own counters).
        const received = [transactions, heartbeats, garbage]
          .flatMap((list: Outgoing[]) => list.filter((m, i) => i % waves <= w && !uncounted.has(m))).length;
        status = await waitFor(`wave ${w + 1} received and handled`, async () => {
          const s = await gateway.status();
          const { pending } = await redis.depth(settings.incomingQueue);
          return s.counters.received >= received && pending === 0 ? s : undefined;
        }, { timeoutMs: 60_000, intervalMs: 200 });
        rssAfterWave.push((await gateway.rssKb())!);
      }
      await assertLedgerExact(db, redis, settings.incomingQueue, transactions, 60_000);
      status = await waitFor("every message received", async () => {
        const s = await gateway.status();
        return s.counters.received >= expectedReceived &&
            s.counters.rejected_by_reason.bad_serial >= BAD_SERIAL &&
            (await redis.depth(settings.incomingQueue)).dead >= expectedDead
          ? s
          : undefined;
      }, { timeoutMs: 30_000, intervalMs: 200 });
    } finally {
      sampling = false;
      await sampler;
    }
    const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
    console.log(
      `[garbage_flood] RSS before ${mb(rssBefore)}, after each wave ${rssAfterWave.map(mb).join(", ")}, ` +
        `peak ${mb(rssPeak)} (bound ${mb(RSS_BOUND_KB)})`,
    );

    assert.ok(gateway.running, "the gateway process is still up");
    assert.equal(await gateway.healthz(), 200);
    assert.ok(rssPeak < RSS_BOUND_KB, `peak RSS ${mb(rssPeak)} stays under ${mb(RSS_BOUND_KB)}`);

    const reasons = status.counters.rejected_by_reason;
    assert.equal(reasons.bad_serial, BAD_SERIAL, `bad serials rejected: ${JSON.stringify(reasons)}`);
    assert.equal(reasons.too_large, TOO_LARGE, `oversize payloads rejected: ${JSON.stringify(reasons)}`);
    assert.equal(reasons.invalid_json, INVALID_JSON, `invalid JSON rejected: ${JSON.stringify(reasons)}`);
    // Each message on a served topic received once; unserved topics never reached the gateway.
    assert.equal(status.counters.received, expectedReceived, JSON.stringify(status.counters));
    const machines = await db.query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM machines WHERE serial_no IN (?) AND last_heard_at IS NOT NULL",
      [serials],
    );
    assert.equal(Number(machines[0]!.n), MACHINES, "every machine's heartbeats landed");

    // Dead letters: the uplink's (oversize, invalid JSON) and the worker's (schema); never good traffic.
    const dead = await redis.deadLetters(settings.incomingQueue);
    const byReason = JSON.stringify(countBy(dead.map((d) => d.reason.replace(/[0-9a-f]{6}-\d+/g, "#"))));
    // Deep nesting: deeper than the uplink's limit (MariaDB's JSON_VALID stops at 32 levels) it is
    // dead-lettered as unprocessable at once, and must not stall the uplink.
    assert.equal(reasons.unprocessable, DEEP, `unprocessable: ${JSON.stringify(reasons)}`);
    assert.equal(dead.length, expectedDead + DEEP, `${dead.length} dead letters: ${byReason}`);
    const goodIds = new Set(transactions.map((t) => t.transactionId));
    for (const letter of dead) {
      for (const id of letter.job.match(/T[0-9a-f]{6}-\d+-\d+/g) ?? []) {
        assert.ok(!goodIds.has(id), `a good transaction was dead-lettered: ${letter.reason}`);
      }
    }
    const bigLetters = dead.filter((d) => d.reason.includes("exceeds"));
    assert.equal(bigLetters.length, TOO_LARGE);
    assert.ok(
      bigLetters.every((d) => d.job.length < 16 * 1024),
      "oversize payloads are kept only as a sample",
    );
  });
});

/**
 * @module redis_event_channel_test
 * The relay's Redis side on the local Redis and on a private three-master Cluster: a message
 * published by one channel reaches every subscriber of the same queue's channel and no other
 * deployment's; the watchers' set counts processes with a listener, renews, lapses and leaves.
 * Through Sentinel, both connections follow the master when the old one dies.
 */
import assert from "node:assert/strict";
import { dropRedisKeys, SERVICES, uniqueId, waitFor } from "../../tests/support.ts";
import { RedisCluster, RedisSentinelSet, TOPOLOGY_PASSWORD } from "../../tests/faults/redis_topology.ts";
import { Redis } from "ioredis";
import { RedisEventChannel } from "./redis_event_channel.ts";

async function exercise(url: string, queue: string): Promise<void> {
  const a = new RedisEventChannel(url, queue);
  const b = new RedisEventChannel(url, queue);
  const other = new RedisEventChannel(url, `${queue}-other`);
  const got: Record<string, string[]> = { a: [], b: [], other: [] };
  try {
    assert.equal(a.channel, `{${queue}}:events`);
    assert.equal(a.watchersKey, `{${queue}}:events:watchers`);
    await a.open((t) => got.a!.push(t));
    await b.open((t) => got.b!.push(t));
    await other.open((t) => got.other!.push(t));
    // (PUBLISH's count is of the receiving node's subscribers only on a Cluster: not asserted.)
    await a.publish("one");
    await waitFor(() => got.a!.length === 1 && got.b!.length === 1, 5000, "the message at both");
    assert.deepEqual(got, { a: ["one"], b: ["one"], other: [] }, "another deployment's channel stays apart");

    assert.equal(await a.watchers("A", "read", 600), 0);
    assert.equal(await a.watchers("A", "watch", 600), 1);
    assert.equal(await b.watchers("B", "watch", 600), 2);
    assert.equal(await b.watchers("B", "read", 600), 2);
    assert.equal(await other.watchers("O", "read", 600), 0, "another deployment's watchers are its own");
    assert.equal(await b.watchers("B", "leave", 600), 1);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(await b.watchers("B", "read", 600), 0, "an entry not renewed lapses");
  } finally {
    await Promise.all([a.close(), b.close(), other.close()]);
    await a.close();
  }
  await assert.rejects(a.publish("after close"));
}

Deno.test("redis event channel: one queue's processes hear each other; watchers come and go", async () => {
  const queue = `${uniqueId("test:")}:mqtt_incoming_jobs`;
  try {
    await exercise(SERVICES.redis, queue);
  } finally {
    await dropRedisKeys(queue);
  }
});

Deno.test("redis event channel: the same on a three-master Redis Cluster", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gw_events_cluster_" });
  const cluster = await RedisCluster.start(dir);
  try {
    await exercise(cluster.url, "mqtt_incoming_jobs");
    // The subscriber sits on whichever node ioredis picks: a PUBLISH to each node reaches it.
    const channel = new RedisEventChannel(cluster.url, "mqtt_incoming_jobs");
    const got: string[] = [];
    try {
      await channel.open((t) => got.push(t));
      for (const port of cluster.ports) {
        const node = new Redis({ port, password: TOPOLOGY_PASSWORD, lazyConnect: true });
        await node.connect();
        await node.publish(channel.channel, `via ${port}`);
        await node.quit();
      }
      await waitFor(() => got.length === cluster.ports.length, 5000, "a message through every node");
      assert.deepEqual(got.sort(), cluster.ports.map((p) => `via ${p}`).sort());
    } finally {
      await channel.close();
    }
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("redis event channel: through Sentinel, publisher and subscriber follow a failover", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gw_events_sentinel_" });
  const set = await RedisSentinelSet.start(dir);
  const a = new RedisEventChannel(set.url, "mqtt_incoming_jobs");
  const b = new RedisEventChannel(set.url, "mqtt_incoming_jobs");
  const got: string[] = [];
  try {
    await a.open(() => {});
    await b.open((t) => got.push(t));
    await a.publish("before");
    await waitFor(() => got.includes("before"), 5000, "the message before the failover");
    assert.equal(await a.watchers("A", "watch", 60_000), 1);

    // The master dies (a stopped one, not a demoted one, whose replica link would still carry
    // the messages): the sentinel promotes the replica and both connections must move to it.
    const master = await set.masterPort();
    const index = set.dataPorts.indexOf(master);
    await set.processes[index]!.stop("SIGKILL");
    await waitFor(
      async () => await set.masterPort() !== master,
      30_000,
      "the sentinel to promote the replica",
    );
    let n = 0;
    await waitFor(
      async () => {
        // Fails fast until the publisher has reconnected; then until the subscriber has.
        await a.publish(`after ${n++}`).catch(() => {});
        return got.some((t) => t.startsWith("after"));
      },
      30_000,
      "a message after the failover",
    );
    // Replication is asynchronous, so the entry may have died with the old master: the relay renews
    // it every 2 s, and on the new master the set works the same.
    assert.equal(await a.watchers("A", "watch", 60_000), 1);
    assert.equal(await b.watchers("B", "watch", 60_000), 2);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await set.close();
    await Deno.remove(dir, { recursive: true });
  }
});

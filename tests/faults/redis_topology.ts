/**
 * @module redis_topology
 * Private Redis topologies for tests, from Debian's `redis-server` on free local ports, each in its
 * own temporary directory: {@link RedisCluster} (three masters, `redis-cli --cluster create`) and
 * {@link RedisSentinelSet} (a master, a replica and a sentinel; `failover()` asks the sentinel to
 * promote the replica). Both require a password, so the gateway's URL carries credentials, and
 * both answer `depth(queue)` / `deadLetters(queue)` like `RedisServer` for the ledger checks.
 */
import { openRedis, type RedisClient } from "../../queue/redis/open_redis.ts";
import { keyPrefix } from "../../queue/redis/key_prefix.ts";
import { canConnect, delay, ManagedProcess, waitFor } from "./support.ts";

export const TOPOLOGY_PASSWORD = "topo-secret-pw";

/** A free port P below 55535 whose cluster bus port P + 10000 is free too. */
function clusterPort(taken: Set<number>): number {
  for (let i = 0; i < 200; i++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    let bus: Deno.Listener | undefined;
    try {
      if (port >= 55535 || taken.has(port) || taken.has(port + 10000)) continue;
      bus = Deno.listen({ hostname: "127.0.0.1", port: port + 10000 });
      taken.add(port).add(port + 10000);
      return port;
    } catch {
      continue;
    } finally {
      listener.close();
      bus?.close();
    }
  }
  throw new Error("No free port pair for a cluster node");
}

async function redisCli(args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["--no-auth-warning", "-a", TOPOLOGY_PASSWORD, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`redis-cli ${args.join(" ")} failed: ${text}`);
  return text;
}

/** Starts redis-server with `args` in `dir`, logging to `dir/<name>.log`, and waits for its port. */
async function startServer(name: string, dir: string, port: number, args: string[]): Promise<ManagedProcess> {
  const process = await ManagedProcess.spawn(name, "redis-server", args, { logPath: `${dir}/${name}.log` });
  await waitFor(`${name} on port ${port}`, async () => {
    if (!process.running) throw new Error(`${name} exited: ${await process.logTail(10)}`);
    return await canConnect(port);
  }, { timeoutMs: 10_000, intervalMs: 50 });
  return process;
}

function dataNodeArgs(dir: string, port: number): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--requirepass",
    TOPOLOGY_PASSWORD,
    "--masterauth",
    TOPOLOGY_PASSWORD,
    // A replica's full sync starts at once (the default waits 5 s for more replicas to join).
    "--repl-diskless-sync-delay",
    "0",
  ];
}

/** What the ledger checks read of a queue, on any topology. */
async function queueDepth(redis: RedisClient, queue: string, processingKeys: string[]) {
  const prefix = keyPrefix(queue);
  let pending = await redis.llen(queue) + await redis.zcard(`${prefix}:delayed`);
  for (const key of processingKeys) pending += await redis.llen(key);
  return { pending, dead: await redis.llen(`${prefix}:dead`) };
}

/** Runs `fn` with a short-lived client of `url`, closed afterwards. */
async function withClient<T>(url: string, fn: (redis: RedisClient) => Promise<T>): Promise<T> {
  const redis = openRedis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** A three-master Redis Cluster (no replicas) on free ports. */
export class RedisCluster {
  private constructor(readonly dir: string, readonly ports: number[], readonly nodes: ManagedProcess[]) {}

  static async start(dir: string, masters = 3): Promise<RedisCluster> {
    const taken = new Set<number>();
    const ports = Array.from({ length: masters }, () => clusterPort(taken));
    const nodes: ManagedProcess[] = [];
    try {
      for (const port of ports) {
        const nodeDir = `${dir}/cluster-${port}`;
        await Deno.mkdir(nodeDir, { recursive: true });
        nodes.push(
          await startServer(`redis-cluster-${port}`, nodeDir, port, [
            ...dataNodeArgs(nodeDir, port),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "3000",
          ]),
        );
      }
      await redisCli(["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-yes"]);
      for (const port of ports) {
        await waitFor(`cluster node ${port} to see the cluster ok`, async () => {
          const info = await redisCli(["-p", String(port), "CLUSTER", "INFO"]);
          return info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${masters}`);
        }, { timeoutMs: 20_000, intervalMs: 100 });
      }
    } catch (error) {
      await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
      throw error;
    }
    return new RedisCluster(dir, ports, nodes);
  }

  /** `redis+cluster://` with the password and every node as a seed. */
  get url(): string {
    return `redis+cluster://:${TOPOLOGY_PASSWORD}@${this.ports.map((p) => `127.0.0.1:${p}`).join(",")}`;
  }

  with<T>(fn: (redis: RedisClient) => Promise<T>): Promise<T> {
    return withClient(this.url, fn);
  }

  /** Keys matching `pattern` on every master (KEYS sees only its own node's). */
  async keys(pattern: string): Promise<string[]> {
    const found: string[] = [];
    for (const port of this.ports) {
      const out = await redisCli(["-p", String(port), "--raw", "KEYS", pattern]);
      found.push(...out.split("\n").map((s) => s.trim()).filter(Boolean));
    }
    return found.sort();
  }

  async depth(queue: string): Promise<{ pending: number; dead: number }> {
    const processing = await this.keys(`${keyPrefix(queue)}:processing:*`);
    return await this.with((redis) => queueDepth(redis, queue, processing));
  }

  deadLetters(queue: string): Promise<{ job: string; reason: string }[]> {
    return this.with(async (redis) =>
      (await redis.lrange(`${keyPrefix(queue)}:dead`, 0, -1)).map((s) => JSON.parse(s))
    );
  }

  async logTail(lines = 20): Promise<string> {
    return (await Promise.all(this.nodes.map((n) => n.logTail(lines)))).join("\n");
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop("SIGKILL")));
  }
}

export const SENTINEL_MASTER = "gwmaster";

/** One master, one replica and one sentinel watching them, on free ports. */
export class RedisSentinelSet {
  private constructor(
    readonly dir: string,
    readonly dataPorts: number[],
    readonly sentinelPort: number,
    readonly processes: ManagedProcess[],
  ) {}

  static async start(dir: string): Promise<RedisSentinelSet> {
    const taken = new Set<number>();
    const [masterPort, replicaPort, sentinelPort] = [
      clusterPort(taken),
      clusterPort(taken),
      clusterPort(taken),
    ];
    const processes: ManagedProcess[] = [];
    try {
      processes.push(await startServer("redis-master", dir, masterPort!, dataNodeArgs(dir, masterPort!)));
      processes.push(
        await startServer("redis-replica", dir, replicaPort!, [
          ...dataNodeArgs(dir, replicaPort!),
          "--replicaof",
          "127.0.0.1",
          String(masterPort),
        ]),
      );
      const config = `${dir}/sentinel.conf`;
      await Deno.writeTextFile(
        config,
        [
          `port ${sentinelPort}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 1`,
          `sentinel auth-pass ${SENTINEL_MASTER} ${TOPOLOGY_PASSWORD}`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 3000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
          "",
        ].join("\n"),
      );
      processes.push(await startServer("redis-sentinel", dir, sentinelPort!, [config, "--sentinel"]));
      const set = new RedisSentinelSet(dir, [masterPort!, replicaPort!], sentinelPort!, processes);
      await waitFor("the sentinel to see the replica in sync", async () => {
        const replicas = await set.#sentinel(["SENTINEL", "REPLICAS", SENTINEL_MASTER]);
        const info = await redisCli(["-p", String(replicaPort), "INFO", "replication"]);
        return replicas.includes(String(replicaPort)) && info.includes("master_link_status:up");
      }, { timeoutMs: 30_000, intervalMs: 200 });
      return set;
    } catch (error) {
      await Promise.all(processes.map((p) => p.stop("SIGKILL")));
      throw error;
    }
  }

  #sentinel(args: string[]): Promise<string> {
    // The sentinel itself has no password; redis-cli's -a would make it complain, not fail.
    return redisCli(["-p", String(this.sentinelPort), ...args]);
  }

  /** `redis+sentinel://` with the password (for the data nodes), the sentinel and the master name. */
  get url(): string {
    return `redis+sentinel://:${TOPOLOGY_PASSWORD}@127.0.0.1:${this.sentinelPort}/${SENTINEL_MASTER}`;
  }

  /** The port of the data node the sentinel names master now. */
  async masterPort(): Promise<number> {
    const out = await this.#sentinel(["--raw", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER]);
    return Number(out.trim().split("\n")[1]);
  }

  /**
   * `SENTINEL FAILOVER`: the replica becomes master, the old master its replica. Resolves once the
   * sentinel names the new master; the old one is demoted a few seconds later (clients that still
   * write to it meanwhile are what a failover test is about).
   */
  async failover(): Promise<{ from: number; to: number }> {
    const from = await this.masterPort();
    const to = this.dataPorts.find((p) => p !== from)!;
    await this.#sentinel(["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
    await waitFor("the sentinel to name the new master", async () => await this.masterPort() === to, {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    return { from, to };
  }

  with<T>(fn: (redis: RedisClient) => Promise<T>): Promise<T> {
    return withClient(this.url, fn);
  }

  async depth(queue: string): Promise<{ pending: number; dead: number }> {
    return await this.with(async (redis) => {
      const processing = await redis.keys(`${keyPrefix(queue)}:processing:*`);
      return await queueDepth(redis, queue, processing);
    });
  }

  deadLetters(queue: string): Promise<{ job: string; reason: string }[]> {
    return this.with(async (redis) =>
      (await redis.lrange(`${keyPrefix(queue)}:dead`, 0, -1)).map((s) => JSON.parse(s))
    );
  }

  async logTail(lines = 20): Promise<string> {
    return (await Promise.all(this.processes.map((p) => p.logTail(lines)))).join("\n");
  }

  async close(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop("SIGKILL")));
    await delay(0);
  }
}

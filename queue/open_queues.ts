/**
 * @module open_queues
 * Chooses the queue backend from configuration: Redis lists when `REDIS_URL` is set, else the
 * embedded durable queue, a SQLite file `queue.db` in `DATA_DIR` (same semantics, no server).
 * `REDIS_URL` may name one server, a Cluster or a Sentinel set (see `redis/open_redis.ts`). Only the
 * chosen backend's code is loaded (see db/open_store.ts for why).
 */
import { join } from "node:path";
import type { ReliableQueue } from "./reliable_queue.ts";
import type { RedisQueue } from "./redis/redis_queue.ts";
import type { SqliteQueue } from "./sqlite/sqlite_queue.ts";

export interface QueueBackend {
  readonly kind: "redis" | "sqlite";
  /** A consumer of `name`; `consumer` must be stable across restarts of the same process slot. */
  queue(name: string, consumer: string): ReliableQueue;
  ping(): Promise<void>;
  /** The last connection error of the backend, or null (Redis; SQLite has none). */
  lastError(): string | null;
  /** `handBack`: see {@link ReliableQueue.close}. */
  close(options?: { handBack?: boolean }): Promise<void>;
}

/** The part of the configuration the queues need (`REDIS_URL`, `DATA_DIR`). */
export interface QueueBackendOptions {
  redisUrl?: string;
  /** Replicas that must hold a pushed job (see `RedisQueueOptions.replicas`); default 0. */
  waitReplicas?: number;
  /** A consumer not heard from for this long is dead (see `RedisQueueOptions.aliveTtlMs`). */
  consumerTtlMs?: number;
  dataDir: string;
}

export async function openQueueBackend(o: QueueBackendOptions): Promise<QueueBackend> {
  if (!o.redisUrl) return await openSqliteBackend(join(o.dataDir, "queue.db"), o.consumerTtlMs);
  const [{ openRedis }, { RedisQueue }] = await Promise.all([
    import("./redis/open_redis.ts"),
    import("./redis/redis_queue.ts"),
  ]);
  const redis = openRedis(o.redisUrl, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 5000),
  });
  // Reported by ping() and the callers; ioredis reconnects itself.
  let lastError: string | null = null;
  redis.on("error", (error: Error) => void (lastError = error.message));
  redis.on("ready", () => void (lastError = null));
  const queues: RedisQueue[] = [];
  let closed: Promise<void> | undefined;
  return {
    kind: "redis",
    queue(name, consumer) {
      const q = new RedisQueue(redis, name, {
        consumerId: consumer,
        replicas: o.waitReplicas,
        aliveTtlMs: o.consumerTtlMs,
      });
      queues.push(q);
      return q;
    },
    async ping() {
      await redis.ping();
    },
    lastError: () => lastError,
    close(options) {
      closed ??= (async () => {
        await Promise.allSettled(queues.map((q) => q.close(options)));
        // QUIT waits for a connection that may never come (Redis down): then just drop it.
        if (redis.status === "ready") await redis.quit().catch(() => redis.disconnect());
        else redis.disconnect();
      })();
      return closed;
    },
  };
}

async function openSqliteBackend(path: string, aliveTtlMs?: number): Promise<QueueBackend> {
  const { SqliteQueue } = await import("./sqlite/sqlite_queue.ts");
  const db = SqliteQueue.openDatabase(path);
  const queues: SqliteQueue[] = [];
  let closed: Promise<void> | undefined;
  return {
    kind: "sqlite",
    queue(name, consumer) {
      const q = new SqliteQueue(db, name, { consumerId: consumer, aliveTtlMs });
      queues.push(q);
      return q;
    },
    ping() {
      db.prepare("SELECT 1").get();
      return Promise.resolve();
    },
    lastError: () => null,
    close() {
      closed ??= (async () => {
        await Promise.allSettled(queues.map((q) => q.close()));
        db.close();
      })();
      return closed;
    },
  };
}

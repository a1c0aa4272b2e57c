/**
 * @module open_redis
 * The one place the gateway makes a Redis client from `REDIS_URL` (see `redis_url.ts`): one
 * server, a Cluster (ioredis `Cluster` from seed nodes) or a master found through Sentinel. The
 * queues, the downlink lock and the credential cache all get their client here, so every part
 * of the gateway works on every topology.
 */
import { Cluster, Redis } from "ioredis";
import { parseRedisUrl } from "./redis_url.ts";

/** A client of any topology; the commands the gateway uses are the same on both. */
export type RedisClient = Redis | Cluster;

/** The connection behaviour a caller wants, whatever the topology. */
export interface RedisConnectOptions {
  lazyConnect?: boolean;
  /** false: a command fails at once while disconnected instead of waiting. */
  enableOfflineQueue?: boolean;
  /** null: a command waits (and is resent) until it gets an answer. */
  maxRetriesPerRequest?: number | null;
  connectTimeout?: number;
  /** Delay before reconnect attempt `times`. */
  retryStrategy?: (times: number) => number;
}

/** A client for `url`; throws `RedisUrlError` (which never shows the password) on a bad URL. */
export function openRedis(url: string, options: RedisConnectOptions = {}): RedisClient {
  const target = parseRedisUrl(url);
  const { lazyConnect, enableOfflineQueue, maxRetriesPerRequest, connectTimeout, retryStrategy } = options;
  if (target.kind === "single") {
    return new Redis(url, {
      lazyConnect,
      enableOfflineQueue,
      maxRetriesPerRequest,
      connectTimeout,
      retryStrategy,
    });
  }
  const tls = target.tls ? {} : undefined;
  if (target.kind === "cluster") {
    return new Cluster(target.nodes, {
      lazyConnect,
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
      // A failover moves slots: retry a command on a closed node or a CLUSTERDOWN rather than fail it.
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 300,
      redisOptions: {
        username: target.username,
        password: target.password,
        tls,
        connectTimeout,
        maxRetriesPerRequest,
      },
    });
  }
  return new Redis({
    sentinels: target.sentinels,
    name: target.masterName,
    db: target.db,
    username: target.username,
    password: target.password,
    // The same credentials for the sentinels; ioredis goes on when a sentinel has no password set.
    sentinelUsername: target.username,
    sentinelPassword: target.password,
    tls,
    enableTLSForSentinelMode: target.tls,
    // Follow a failover at once (+switch-master) instead of at the next connection error.
    failoverDetector: true,
    // A master that was just demoted answers writes with READONLY: reconnect (to the master the
    // sentinels name now) and send the command again.
    reconnectOnError: (error) => error.message.startsWith("READONLY") ? 2 : false,
    lazyConnect,
    enableOfflineQueue,
    maxRetriesPerRequest,
    connectTimeout,
    retryStrategy,
  });
}

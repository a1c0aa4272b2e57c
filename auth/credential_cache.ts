/**
 * @module credential_cache
 * Where the broker reads machine credentials without asking the gateway: Redis hashes, exactly
 * as the contract and EMQX's Redis authenticator / authorizer expect them.
 *
 * - `machine_auth:{serial}`: field `password_hash` = hex SHA-256 of the token (EMQX:
 *   `HMGET machine_auth:${username} password_hash is_superuser`, algorithm sha256, no salt);
 *   the gateway's own identity has `is_superuser` = `true`.
 * - `machine_acl:{serial}`: topic → `publish` | `subscribe`, the machine's allowed topics from
 *   `machine_acl.ts` (EMQX: `HGETALL machine_acl:${username}`).
 */
import type { Redis } from "ioredis";
import type { MachineTopics } from "./machine_acl.ts";

export interface CredentialCache {
  /** The stored hash; null when there is none. Throws when the cache cannot be reached. */
  get(serialNo: string): Promise<string | null>;
  /** Replaces the machine's hash and ACL entries at once. */
  set(serialNo: string, hash: string, topics: MachineTopics): Promise<void>;
  delete(serialNo: string): Promise<void>;
  /** The gateway's own identity, for EMQX's Redis authenticator. */
  setSuperuser(username: string, hash: string): Promise<void>;
}

export const authKey = (serialNo: string) => `machine_auth:${serialNo}`;
export const aclKey = (serialNo: string) => `machine_acl:${serialNo}`;

export class RedisCredentialCache implements CredentialCache {
  constructor(private readonly redis: Redis) {}

  async get(serialNo: string): Promise<string | null> {
    return await this.redis.hget(authKey(serialNo), "password_hash");
  }

  async set(serialNo: string, hash: string, topics: MachineTopics): Promise<void> {
    const acl: Record<string, string> = {};
    for (const t of topics.publish) acl[t] = "publish";
    for (const t of topics.subscribe) acl[t] = "subscribe";
    const results = await this.redis.multi()
      .hset(authKey(serialNo), { password_hash: hash, is_superuser: "false" })
      .del(aclKey(serialNo))
      .hset(aclKey(serialNo), acl)
      .exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw failed?.[0] ?? new Error("Redis transaction aborted");
  }

  async delete(serialNo: string): Promise<void> {
    await this.redis.del(authKey(serialNo), aclKey(serialNo));
  }

  async setSuperuser(username: string, hash: string): Promise<void> {
    await this.redis.multi()
      .hset(authKey(username), { password_hash: hash, is_superuser: "true" })
      .del(aclKey(username))
      .exec();
  }
}

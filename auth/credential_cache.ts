/**
 * @module credential_cache
 * Where the broker reads machine credentials without asking the gateway: Redis keys, exactly as
 * the contract and EMQX's Redis authenticator / authorizer expect them.
 *
 * - `machine_auth:{serial}`: the gateway writes a hash, field `password_hash` = hex SHA-256 of the
 *   token (EMQX: `HMGET machine_auth:${username} password_hash is_superuser`, algorithm sha256, no
 *   salt); the gateway's own identity has `is_superuser` = `true`. It also reads the plain string
 *   seed 004's Laravel back office writes (`SET machine_auth:{serial} <hex sha256>`, contract
 *   v1.1); writing a token replaces such a string with the hash form.
 * - `machine_acl:{serial}`: topic → `publish` | `subscribe`, the machine's allowed topics from
 *   `machine_acl.ts` (EMQX: `HGETALL machine_acl:${username}`).
 *
 * The names are EMQX's and the back office's, so they carry no hash tag: on a Redis Cluster a
 * machine's two keys lie in different slots, and each is written on its own (the ACL first, then
 * the hash that lets the machine in) instead of in one transaction.
 */
import type { RedisClient } from "../queue/redis/open_redis.ts";
import type { MachineTopics } from "./machine_acl.ts";

export interface CredentialCache {
  /**
   * The stored hash; null when there is none. Throws {@link WrongTypeError} when the key holds
   * something else, and when the cache cannot be reached.
   */
  get(serialNo: string): Promise<string | null>;
  /** Replaces the machine's hash (whatever form the key had) and ACL entries at once. */
  set(serialNo: string, hash: string, topics: MachineTopics): Promise<void>;
  delete(serialNo: string): Promise<void>;
  /** The gateway's own identity, for EMQX's Redis authenticator. */
  setSuperuser(username: string, hash: string): Promise<void>;
}

export const authKey = (serialNo: string) => `machine_auth:${serialNo}`;
export const aclKey = (serialNo: string) => `machine_acl:${serialNo}`;

/** A credential key that is neither the hash nor the string form (a list, a set, …). */
export class WrongTypeError extends Error {
  override name = "WrongTypeError";
  constructor(readonly key: string, readonly type: string) {
    super(`${key} is a Redis ${type}, neither a hash with password_hash nor a string`);
  }
}

const isWrongType = (error: unknown) => error instanceof Error && error.message.startsWith("WRONGTYPE");

export class RedisCredentialCache implements CredentialCache {
  constructor(private readonly redis: RedisClient) {}

  async get(serialNo: string): Promise<string | null> {
    const key = authKey(serialNo);
    try {
      // The gateway's own form first: one round trip in the usual case.
      return await this.redis.hget(key, "password_hash");
    } catch (error) {
      if (!isWrongType(error)) throw error;
    }
    try {
      return await this.redis.get(key); // the back office's plain string
    } catch (error) {
      if (!isWrongType(error)) throw error;
      throw new WrongTypeError(key, await this.redis.type(key));
    }
  }

  async set(serialNo: string, hash: string, topics: MachineTopics): Promise<void> {
    const acl: Record<string, string> = {};
    for (const t of topics.publish) acl[t] = "publish";
    for (const t of topics.subscribe) acl[t] = "subscribe";
    const auth = { password_hash: hash, is_superuser: "false" };
    // DEL first: the key may hold the back office's string form, which HSET cannot extend.
    if (this.redis.isCluster) {
      checked(await this.redis.multi().del(aclKey(serialNo)).hset(aclKey(serialNo), acl).exec());
      checked(await this.redis.multi().del(authKey(serialNo)).hset(authKey(serialNo), auth).exec());
      return;
    }
    checked(
      await this.redis.multi()
        .del(authKey(serialNo))
        .hset(authKey(serialNo), auth)
        .del(aclKey(serialNo))
        .hset(aclKey(serialNo), acl)
        .exec(),
    );
  }

  async delete(serialNo: string): Promise<void> {
    if (this.redis.isCluster) {
      // The hash first: without it the machine is out, whatever ACL is left.
      await this.redis.del(authKey(serialNo));
      await this.redis.del(aclKey(serialNo));
      return;
    }
    await this.redis.del(authKey(serialNo), aclKey(serialNo));
  }

  async setSuperuser(username: string, hash: string): Promise<void> {
    const auth = { password_hash: hash, is_superuser: "true" };
    if (this.redis.isCluster) {
      await this.redis.del(aclKey(username));
      checked(await this.redis.multi().del(authKey(username)).hset(authKey(username), auth).exec());
      return;
    }
    checked(
      await this.redis.multi().del(authKey(username)).hset(authKey(username), auth).del(aclKey(username))
        .exec(),
    );
  }
}

/** Throws the first error of a MULTI's replies (or that it was aborted). */
function checked(results: [Error | null, unknown][] | null): void {
  const failed = results?.find(([error]) => error);
  if (!results || failed) throw failed?.[0] ?? new Error("Redis transaction aborted");
}

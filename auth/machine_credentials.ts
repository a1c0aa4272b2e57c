/**
 * @module machine_credentials
 * Machine tokens (seed 004's B014): issue, rotate, revoke, verify. A token is 32 random bytes
 * (base64url), shown once; only its hex SHA-256 is stored, in the database (`machines.api_token_hash`,
 * the source of truth) and in Redis (`machine_auth:{serial}`, what EMQX reads). Issuing again
 * rotates: the old token stops working at once. Verification reads Redis when there is one and
 * falls back to the database when the key is missing or Redis is unreachable.
 *
 * One truth: a rotation or revocation writes Redis while it holds the machine's row lock, before
 * the database commits (`Store.setMachineToken`), and the rotations of one machine in this process
 * run one after the other. However many run at once, on however many gateways, the last one to
 * commit is the one both stores hold, and the only token that works. A failed Redis write rolls
 * the database back (the request answers 503; retrying converges both).
 *
 * Nothing is written for a denied attempt: only a token that matched the database re-seeds a
 * missing Redis key, under the same row lock, so it can never put back a hash just replaced.
 */
import { createHash, randomBytes } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import type { Store } from "../db/store.ts";
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from "../lib/errors.ts";
import { SERIAL_NO } from "../contract/identity.ts";
import { constantTimeEqual } from "../lib/constant_time_equal.ts";
import { type CredentialCache, WrongTypeError } from "./credential_cache.ts";
import { machineTopics } from "./machine_acl.ts";

const log = getLogger(["gateway", "auth"]);

/** Hex SHA-256 of a token: what the database and `machine_auth:{serial}` hold. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export interface MachineCredentialsOptions {
  store: Store;
  /** Redis, when the gateway has one; without it the database alone is used. */
  cache?: CredentialCache;
  /** The gateway's own MQTT username: no machine may take it. */
  gatewayUsername?: string;
  /** A local service's MQTT username (`MQTT_SERVICE_USERNAME`): no machine may take it either. */
  serviceUsername?: string;
  now?: () => Date;
}

export class MachineCredentials {
  readonly #o: MachineCredentialsOptions;
  readonly #now: () => Date;
  /** The last rotation / revocation of each machine in flight here: the next one waits for it. */
  readonly #pending = new Map<string, Promise<unknown>>();

  constructor(options: MachineCredentialsOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** Issues (or rotates) a machine's token; registers the machine if it is new. */
  async issue(serialNo: string): Promise<{ serialNo: string; token: string; issuedAt: Date }> {
    this.#checkSerial(serialNo);
    if (this.#o.gatewayUsername && serialNo === this.#o.gatewayUsername) {
      throw new ConflictError(`Cannot issue a token for ${serialNo}: it is the gateway's own MQTT username`);
    }
    if (this.#o.serviceUsername && serialNo === this.#o.serviceUsername) {
      throw new ConflictError(`Cannot issue a token for ${serialNo}: it is a service's MQTT username`);
    }
    const token = randomBytes(32).toString("base64url");
    const hash = hashToken(token);
    const issuedAt = await this.#oneAtATime(serialNo, async () => {
      const at = this.#now();
      await this.#o.store.setMachineToken(serialNo, hash, at, (h) => this.#publish(serialNo, h));
      return at;
    });
    log.info("Issued a token for machine {serialNo}", { serialNo });
    return { serialNo, token, issuedAt };
  }

  /** Revokes a machine's token: it stops working for new connections at once. */
  async revoke(serialNo: string): Promise<void> {
    this.#checkSerial(serialNo);
    const found = await this.#oneAtATime(
      serialNo,
      () => this.#o.store.setMachineToken(serialNo, null, this.#now(), (h) => this.#publish(serialNo, h)),
    );
    if (!found) throw new NotFoundError(`No machine ${serialNo}`);
    log.info("Revoked the token of machine {serialNo}", { serialNo });
  }

  /** True when `token` is the machine's current token. Never throws for bad input. */
  async verify(serialNo: string, token: string): Promise<boolean> {
    if (!SERIAL_NO.test(serialNo) || !token) return false;
    const hash = hashToken(token);
    const cache = this.#o.cache;
    if (cache) {
      try {
        const cached = await cache.get(serialNo);
        if (cached !== null) return constantTimeEqual(hash, cached);
      } catch (error) {
        if (error instanceof WrongTypeError) {
          log.warn(
            "{key} has the wrong type ({type}) for a credential; verifying {serialNo} in the database",
            {
              key: error.key,
              type: error.type,
              serialNo,
            },
          );
        } else {
          log.warn("Redis unreachable while verifying {serialNo}, using the database: {error}", {
            serialNo,
            error,
          });
        }
        return this.#verifyInDb(serialNo, hash, false);
      }
    }
    return this.#verifyInDb(serialNo, hash, cache !== undefined);
  }

  /** Writes the gateway's own identity for EMQX's Redis authenticator (superuser). */
  async syncGatewayIdentity(username: string, password: string): Promise<void> {
    if (!this.#o.cache || !username || !password) return;
    await this.#o.cache.setSuperuser(username, hashToken(password));
  }

  async #verifyInDb(serialNo: string, hash: string, reseed: boolean): Promise<boolean> {
    const stored = await this.#o.store.getMachineTokenHash(serialNo);
    if (stored === null || !constantTimeEqual(hash, stored)) return false; // a denial writes nothing
    if (reseed) {
      // Redis lost the key (flushed, restarted without persistence): put it back for EMQX, under the
      // row lock, and only if it is still the current hash and the key is still missing.
      const cache = this.#o.cache!;
      await this.#o.store.withMachineTokenHash(serialNo, async (current) => {
        if (current === stored && await cache.get(serialNo) === null) {
          await cache.set(serialNo, stored, machineTopics(serialNo));
        }
      }).catch((error) =>
        log.warn("Cannot re-seed the Redis credentials of {serialNo}: {error}", { serialNo, error })
      );
    }
    return true;
  }

  /** Writes the committed value to Redis (under the store's row lock): the hash, or its removal. */
  async #publish(serialNo: string, hash: string | null): Promise<void> {
    const cache = this.#o.cache;
    if (!cache) return;
    try {
      if (hash === null) await cache.delete(serialNo);
      else await cache.set(serialNo, hash, machineTopics(serialNo));
    } catch (error) {
      throw new UnavailableError(
        `Cannot ${
          hash === null ? "remove" : "store"
        } the token of ${serialNo} in Redis (the broker reads it ` +
          "there); nothing changed, retry",
        { cause: error },
      );
    }
  }

  /** Runs `fn` after every earlier rotation / revocation of `serialNo` in this process has ended. */
  async #oneAtATime<T>(serialNo: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#pending.get(serialNo);
    const mine = (before ?? Promise.resolve()).then(fn, fn);
    const settled = mine.catch(() => {});
    this.#pending.set(serialNo, settled);
    try {
      return await mine;
    } finally {
      if (this.#pending.get(serialNo) === settled) this.#pending.delete(serialNo);
    }
  }

  #checkSerial(serialNo: string): void {
    if (!SERIAL_NO.test(serialNo)) {
      throw new ValidationError(`Invalid serial_no "${serialNo}": expected 1-64 of A-Z a-z 0-9 _ -`);
    }
  }
}

/**
 * Machine tokens on each store with the real Redis: concurrent rotations leave one truth, the back
 * office's string form is read, a wrong-type key is named, and a denial writes nothing.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { STORE_BACKENDS } from "../tests/store_backends.ts";
import { SERVICES, uniqueId } from "../tests/support.ts";
import { emqxHookRoutes } from "../http/routes/emqx_hooks.ts";
import { aclKey, authKey, RedisCredentialCache, WrongTypeError } from "./credential_cache.ts";
import { MachineAuth } from "./machine_auth.ts";
import { hashToken, MachineCredentials } from "./machine_credentials.ts";

/** One store backend, a Redis connection and credentials over both; every key of `serials` removed after. */
async function rig(backend: (typeof STORE_BACKENDS)[number]) {
  const fixture = await backend.open();
  const redis = new Redis(SERVICES.redis);
  const serials = new Set<string>();
  const cache = new RedisCredentialCache(redis);
  const credentials = () => new MachineCredentials({ store: fixture.store, cache, gatewayUsername: "gw" });
  return {
    store: fixture.store,
    redis,
    cache,
    credentials,
    serial(base: string) {
      const s = uniqueId(base);
      serials.add(s);
      serials.add(s.toLowerCase());
      serials.add(s.toUpperCase());
      return s;
    },
    async close() {
      if (serials.size) await redis.del(...[...serials].flatMap((s) => [authKey(s), aclKey(s)]));
      redis.disconnect();
      await fixture.cleanup();
    },
  };
}

for (const backend of STORE_BACKENDS) {
  Deno.test(`${backend.dialect} + Redis: 30 concurrent rotations leave one hash in both stores, and only the last token works`, async () => {
    const r = await rig(backend);
    try {
      for (let round = 0; round < 3; round++) {
        const serial = r.serial("M-ROT-");
        const credentials = r.credentials();
        const reported: string[] = [];
        await Promise.all(
          Array.from(
            { length: 30 },
            () => credentials.issue(serial).then((issued) => void reported.push(issued.token)),
          ),
        );
        const dbHash = await r.store.getMachineTokenHash(serial);
        assert.equal(await r.redis.hget(authKey(serial), "password_hash"), dbHash, "Redis = database");
        assert.equal(dbHash, hashToken(reported.at(-1)!), "the last token reported is the one stored");
        const working = [];
        for (const token of reported) if (await credentials.verify(serial, token)) working.push(token);
        assert.deepEqual(working, [reported.at(-1)]);
      }
      // Two gateways rotating one machine at once: the row lock orders them across processes.
      const serial = r.serial("M-ROT2-");
      const [a, b] = [r.credentials(), r.credentials()];
      const tokens = (await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).issue(serial))))
        .map((issued) => issued.token);
      const dbHash = await r.store.getMachineTokenHash(serial);
      assert.equal(await r.redis.hget(authKey(serial), "password_hash"), dbHash, "Redis = database");
      assert.equal(tokens.filter((t) => hashToken(t) === dbHash).length, 1, "exactly one token works");
    } finally {
      await r.close();
    }
  });

  Deno.test(`${backend.dialect} + Redis: the back office's plain-string credential is accepted, a wrong-type key is named, and a rotation turns it into the hash form`, async () => {
    const r = await rig(backend);
    try {
      const serial = r.serial("M-LARAVEL-");
      const credentials = r.credentials();
      // Seed 004's Laravel: Redis::set("machine_auth:{serial}", hash('sha256', $token)), no database row.
      await r.redis.set(authKey(serial), hashToken("laravel-token"));
      assert.equal(await credentials.verify(serial, "laravel-token"), true);
      assert.equal(await credentials.verify(serial, "wrong"), false);
      assert.equal(await r.redis.type(authKey(serial)), "string", "left as the back office wrote it");
      const issued = await credentials.issue(serial);
      assert.equal(await r.redis.type(authKey(serial)), "hash");
      assert.equal(await credentials.verify(serial, issued.token), true);
      assert.equal(await credentials.verify(serial, "laravel-token"), false, "rotated away");

      const odd = r.serial("M-ODD-");
      await r.redis.rpush(authKey(odd), "x");
      await assert.rejects(
        r.cache.get(odd),
        (e) => e instanceof WrongTypeError && /is a Redis list/.test(e.message),
      );
      // The database still decides: a token issued there works, the wrong-type key is left alone.
      await r.store.setMachineToken(odd, hashToken("db-token"), new Date());
      assert.equal(await credentials.verify(odd, "db-token"), true);
      assert.equal(await r.redis.type(authKey(odd)), "list");
    } finally {
      await r.close();
    }
  });

  Deno.test(`${backend.dialect} + Redis: exact serials, and denied /emqx/authn calls never write to Redis`, async () => {
    const r = await rig(backend);
    try {
      const credentials = r.credentials();
      const hooks = emqxHookRoutes({
        auth: new MachineAuth({ credentials, gateway: { username: "gw", password: "gw-secret" } }),
      });
      const authn = async (username: string, password: string) => {
        const res = await hooks.request("/emqx/authn", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ clientid: username, username, password }),
        });
        return (await res.json()).result;
      };
      const upper = r.serial("M-RV-");
      const lower = upper.toLowerCase();
      const { token } = await credentials.issue(upper);
      // Redis lost the key (flush): a right token re-seeds it, nothing else does.
      await r.cache.delete(upper);
      const keys = async () =>
        (await Promise.all(
          [upper, lower].flatMap((s) => [authKey(s), aclKey(s)])
            .map((k) => r.redis.exists(k)),
        )).reduce((a, b) => a + b, 0);
      for (let i = 0; i < 100; i++) {
        assert.equal(await authn(lower, token), "deny", "another spelling is another machine");
        assert.equal(await authn(upper, `wrong-${i}`), "deny");
      }
      assert.equal(await keys(), 0, "200 denied calls wrote nothing");
      assert.equal(await authn(upper, token), "allow");
      assert.equal(
        await r.redis.hget(authKey(upper), "password_hash"),
        hashToken(token),
        "re-seeded on success",
      );
      // Revoking M-RV-… ends its token under every spelling; issuing for the lower case leaves it revoked.
      await credentials.revoke(upper);
      assert.equal(await authn(upper, token), "deny");
      assert.equal(await authn(lower, token), "deny");
      const other = await credentials.issue(lower);
      assert.equal(
        await r.store.getMachineTokenHash(upper),
        null,
        "the lower case's token is not the upper's",
      );
      assert.equal(await authn(upper, other.token), "deny");
      assert.equal(await authn(lower, other.token), "allow");
      assert.equal(await r.redis.exists(authKey(upper)), 0);
    } finally {
      await r.close();
    }
  });
}

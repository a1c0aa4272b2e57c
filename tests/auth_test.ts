/**
 * @module auth_test
 * Machine credentials and the EMQX hooks against real Redis + MariaDB: what EMQX's Redis
 * authenticator would read, what the HTTP hooks answer, rotation, revocation, Redis loss.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { Gateway } from "../app/gateway.ts";
import { api, dropMachineKeys, testSerial } from "./downlink_support.ts";
import { query, SERVICES, testEnv, uniqueId } from "./support.ts";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

async function hook(gateway: Gateway, path: string, body: Record<string, string>) {
  const res = await gateway.app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, "EMQX reads any other status as ignore");
  return await res.json();
}

Deno.test("a token issued over HTTP lets the machine in through the hooks and Redis; wrong, revoked or rotated ones do not", async () => {
  const t = await testEnv();
  const gwUser = uniqueId("gw-");
  const gateway = new Gateway(
    t.config({ GATEWAY_ROLES: "api", MQTT_USERNAME: gwUser, MQTT_PASSWORD: "gw-pass-123" }),
  );
  const serial = testSerial();
  const other = testSerial("M-002");
  const redis = new Redis(SERVICES.redis);
  try {
    await gateway.start();
    assert.equal(
      (await api(gateway, "POST", `/api/v1/machines/${serial}/token`, undefined, null)).status,
      401,
    );
    const issued = await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
    assert.equal(issued.status, 201);
    const token: string = issued.json.api_token;

    // What EMQX's Redis authenticator reads (HMGET machine_auth:${username} password_hash is_superuser).
    assert.deepEqual(await redis.hmget(`machine_auth:${serial}`, "password_hash", "is_superuser"), [
      sha256(token),
      "false",
    ]);
    assert.deepEqual(await redis.hgetall(`machine_acl:${serial}`), {
      [`machine/${serial}/heartbeat`]: "publish",
      [`machine/${serial}/error`]: "publish",
      [`machine/${serial}/transaction`]: "publish",
      [`machine/${serial}/command/ack`]: "publish",
      [`machine/${serial}/command`]: "subscribe",
    });
    const [row] = await query(
      t.db.url,
      "SELECT api_token_hash, registered FROM machines WHERE serial_no = ?",
      [serial],
    );
    assert.deepEqual(row, { api_token_hash: sha256(token), registered: 1 });
    assert.deepEqual(await redis.hmget(`machine_auth:${gwUser}`, "password_hash", "is_superuser"), [
      sha256("gw-pass-123"),
      "true",
    ]);

    const authn = (username: string, password: string) =>
      hook(gateway, "/emqx/authn", { clientid: username, username, password });
    const authz = async (username: string, action: string, topic: string) =>
      (await hook(gateway, "/emqx/authz", { clientid: username, username, action, topic })).result;

    assert.deepEqual(await authn(serial, token), { result: "allow", is_superuser: false });
    assert.deepEqual(await authn(serial, "wrong-token"), { result: "deny", is_superuser: false });
    assert.deepEqual(await authn(other, token), { result: "deny", is_superuser: false });
    assert.deepEqual(await authn(gwUser, "gw-pass-123"), { result: "allow", is_superuser: true });
    assert.equal(await authz(serial, "publish", `machine/${serial}/heartbeat`), "allow");
    assert.equal(await authz(serial, "subscribe", `machine/${serial}/command`), "allow");
    assert.equal(
      await authz(serial, "publish", `machine/${other}/heartbeat`),
      "deny",
      "another machine's topic",
    );
    assert.equal(await authz(serial, "subscribe", `machine/${other}/command`), "deny");
    assert.equal(
      await authz(serial, "publish", `machine/${serial}/command`),
      "deny",
      "a machine forging a command",
    );
    assert.equal(await authz(serial, "publish", `machine/${other}/command`), "deny");
    assert.equal(await authz(gwUser, "publish", `machine/${serial}/command`), "allow");

    // Redis lost the key (flush, restart): the database still decides, and Redis is re-seeded.
    await redis.del(`machine_auth:${serial}`);
    assert.equal((await authn(serial, token)).result, "allow");
    assert.equal(await redis.hget(`machine_auth:${serial}`, "password_hash"), sha256(token));

    const rotated = await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
    assert.equal(rotated.status, 201);
    assert.notEqual(rotated.json.api_token, token);
    assert.equal((await authn(serial, token)).result, "deny", "the old token stops working at once");
    assert.equal((await authn(serial, rotated.json.api_token)).result, "allow");

    assert.equal((await api(gateway, "DELETE", `/api/v1/machines/${serial}/token`)).status, 204);
    assert.equal((await authn(serial, rotated.json.api_token)).result, "deny", "revoked");
    assert.equal(await redis.exists(`machine_auth:${serial}`, `machine_acl:${serial}`), 0);
    const [revoked] = await query(t.db.url, "SELECT api_token_hash FROM machines WHERE serial_no = ?", [
      serial,
    ]);
    assert.deepEqual(revoked, { api_token_hash: null });

    assert.equal(
      (await api(gateway, "POST", `/api/v1/machines/${gwUser}/token`)).status,
      409,
      "the gateway's name",
    );
    assert.equal((await api(gateway, "DELETE", `/api/v1/machines/${testSerial("NONE")}/token`)).status, 404);
  } finally {
    await redis.del(`machine_auth:${gwUser}`, `machine_auth:${serial}`, `machine_acl:${serial}`);
    redis.disconnect();
    await gateway.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

Deno.test("30 concurrent POST …/token on MariaDB: Redis and the database hold one hash, the last token reported is the only one the hook allows", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config({ GATEWAY_ROLES: "api" }));
  const serial = testSerial("M-ROT");
  const redis = new Redis(SERVICES.redis);
  try {
    await gateway.start();
    const reported: string[] = [];
    await Promise.all(Array.from({ length: 30 }, async () => {
      const r = await api(gateway, "POST", `/api/v1/machines/${serial}/token`);
      assert.equal(r.status, 201);
      reported.push(r.json.api_token);
    }));
    const [row] = await query<{ api_token_hash: string }>(
      t.db.url,
      "SELECT api_token_hash FROM machines WHERE serial_no = ?",
      [serial],
    );
    assert.equal(await redis.hget(`machine_auth:${serial}`, "password_hash"), row!.api_token_hash);
    assert.equal(row!.api_token_hash, sha256(reported.at(-1)!));
    const allowed = [];
    for (const password of reported) {
      const r = await hook(gateway, "/emqx/authn", { clientid: serial, username: serial, password });
      if (r.result === "allow") allowed.push(password);
    }
    assert.deepEqual(allowed, [reported.at(-1)]);
  } finally {
    redis.disconnect();
    await gateway.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

Deno.test("machines API: paged list with online/offline filter and the machine's detail", async () => {
  const t = await testEnv();
  const gateway = new Gateway(t.config({ GATEWAY_ROLES: "api", MACHINE_ONLINE_SECONDS: "60" }));
  const online = testSerial("A");
  const offline = testSerial("B");
  try {
    await gateway.start();
    const store = gateway.store!;
    await store.recordHeartbeats([
      {
        serialNo: online,
        receivedAt: new Date(),
        temperature: 4.5,
        currentPage: 2,
        payload: { temperature: 4.5 },
      },
      {
        serialNo: offline,
        receivedAt: new Date(Date.now() - 3600_000),
        temperature: 7,
        currentPage: 1,
        payload: {},
      },
    ]);
    await store.recordMachineLogs([{
      serialNo: online,
      receivedAt: new Date(),
      code: "E101",
      level: "error",
      message: "jam",
      payload: {},
    }]);
    const all = await api(gateway, "GET", "/api/v1/machines?limit=1");
    assert.equal(all.status, 200);
    assert.equal(all.json.total, 2);
    assert.equal(all.json.items.length, 1);
    const on = await api(gateway, "GET", "/api/v1/machines?status=online");
    assert.deepEqual(on.json.items.map((m: { serial_no: string }) => m.serial_no), [online]);
    assert.equal(on.json.items[0].online, true);
    const off = await api(gateway, "GET", "/api/v1/machines?status=offline");
    assert.deepEqual(off.json.items.map((m: { serial_no: string }) => m.serial_no), [offline]);
    assert.equal((await api(gateway, "GET", "/api/v1/machines?status=sleepy")).status, 422);
    const detail = await api(gateway, "GET", `/api/v1/machines/${online}`);
    assert.equal(detail.status, 200);
    assert.equal(detail.json.temperature, 4.5);
    assert.deepEqual(detail.json.last_heartbeat, { temperature: 4.5 });
    assert.equal(detail.json.recent_errors[0].code, "E101");
    assert.deepEqual(detail.json.slots, []);
    assert.equal((await api(gateway, "GET", `/api/v1/machines/${testSerial("NONE")}`)).status, 404);
  } finally {
    await gateway.close();
    await t.cleanup();
    await dropMachineKeys();
  }
});

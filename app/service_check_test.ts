import assert from "node:assert/strict";
import { isUnreachable, reasonOf, waitForService, whereOf } from "./service_check.ts";

Deno.test("whereOf shows host:port, never the user or password", () => {
  assert.equal(whereOf("mysql://root:secret@db.example:3307/star_cloud"), "db.example:3307");
  assert.equal(whereOf("redis://:pw@127.0.0.1:6379/0"), "127.0.0.1:6379");
});

Deno.test("reasonOf names a refused connection in words and skips drizzle's query wrapper", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
  assert.equal(reasonOf(new Error("Failed query: select 1", { cause: refused })), "connection refused");
  const denied = Object.assign(new Error("Access denied for user 'x'"), { code: "ER_ACCESS_DENIED_ERROR" });
  assert.equal(
    reasonOf(new Error("Failed query: create table\nparams:", { cause: denied })),
    "Access denied for user 'x'",
  );
  assert.equal(isUnreachable(new Error("wrapped", { cause: refused })), true);
  assert.equal(isUnreachable(denied), false);
});

Deno.test("waitForService retries an unreachable service until it answers, and fails at once otherwise", async () => {
  let tries = 0;
  const refused = Object.assign(new Error("refused"), { code: "ECONNREFUSED" });
  const signal = new AbortController().signal;
  await waitForService(
    {
      service: "Redis",
      variable: "REDIS_URL",
      url: "redis://127.0.0.1:1",
      attempt: () => ++tries < 3 ? Promise.reject(refused) : Promise.resolve(),
    },
    5000,
    signal,
  );
  assert.equal(tries, 3);

  const denied = Object.assign(new Error("Access denied for user 'x'"), { code: "ER_ACCESS_DENIED_ERROR" });
  tries = 0;
  await assert.rejects(
    waitForService(
      {
        service: "MySQL",
        variable: "DATABASE_URL",
        url: "mysql://x:pw@h:3306/d",
        attempt: () => (tries++, Promise.reject(denied)),
      },
      5000,
      signal,
    ),
    {
      message:
        "Cannot use MySQL at h:3306 (DATABASE_URL): Access denied for user 'x'; check the user and password in DATABASE_URL.",
    },
  );
  assert.equal(tries, 1);

  await assert.rejects(
    waitForService(
      {
        service: "the MQTT broker",
        variable: "MQTT_URL",
        url: "mqtt://h:1883",
        attempt: (s) => new Promise((_, reject) => s.addEventListener("abort", () => reject(s.reason))),
        credentials: "MQTT_USERNAME and MQTT_PASSWORD",
        lastReason: () => "Connection refused: Not authorized",
      },
      300,
      signal,
    ),
    /Cannot use the MQTT broker at h:1883 \(MQTT_URL\): Connection refused: Not authorized; check the user and password in MQTT_USERNAME and MQTT_PASSWORD\./,
  );
});

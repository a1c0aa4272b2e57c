import assert from "node:assert/strict";
import type { AuthnResult, BrokerAuth } from "../../auth/broker_auth.ts";
import { emqxHookRoutes, HOOK_SECRET_HEADER } from "./emqx_hooks.ts";

/** M-1 / "right" is a machine; every check is counted, and waits for `release` when held. */
function fakeAuth() {
  let checks = 0;
  let hold: Promise<void> | undefined;
  let release = () => {};
  const auth: BrokerAuth = {
    async authenticate(username, password): Promise<AuthnResult> {
      checks++;
      if (hold) await hold;
      return { ok: username === "M-1" && password === "right", superuser: false };
    },
    authorize: (username, action, topic) =>
      Promise.resolve(action === "publish" && topic === `machine/${username}/heartbeat`),
  };
  return {
    auth,
    checks: () => checks,
    holdChecks() {
      hold = new Promise((r) => release = r);
    },
    release: () => {
      hold = undefined;
      release();
    },
  };
}

type Answer = { status: number; result: string; is_superuser: boolean };

async function post(
  app: ReturnType<typeof emqxHookRoutes>,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const r = await app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, ...(await r.json()) };
}

const login = { clientid: "M-1", username: "M-1", password: "right" };

Deno.test("EMQX hooks: with a secret, a call without it is denied before any check", async () => {
  const f = fakeAuth();
  const app = emqxHookRoutes({ auth: f.auth, secret: "hook-secret-0123456789" });
  assert.deepEqual(await post(app, "/emqx/authn", login), {
    status: 200,
    result: "deny",
    is_superuser: false,
  });
  assert.deepEqual(
    await post(app, "/emqx/authn", login, { [HOOK_SECRET_HEADER]: "wrong-secret-0123456789" }),
    { status: 200, result: "deny", is_superuser: false },
  );
  assert.equal(f.checks(), 0);
  const topic = { username: "M-1", action: "publish", topic: "machine/M-1/heartbeat" };
  assert.equal((await post(app, "/emqx/authz", topic)).result, "deny");
  const ok = { [HOOK_SECRET_HEADER]: "hook-secret-0123456789" };
  assert.equal((await post(app, "/emqx/authn", login, ok)).result, "allow");
  assert.equal((await post(app, "/emqx/authz", topic, ok)).result, "allow");
});

Deno.test("EMQX hooks: beyond maxChecks running, authn answers ignore at once; authz is never limited", async () => {
  const f = fakeAuth();
  const app = emqxHookRoutes({ auth: f.auth, maxChecks: 2 });
  f.holdChecks();
  const held = [post(app, "/emqx/authn", login), post(app, "/emqx/authn", login)];
  await new Promise((r) => setTimeout(r, 10));
  assert.equal((await post(app, "/emqx/authn", login)).result, "ignore");
  const topic = { username: "M-1", action: "publish", topic: "machine/M-1/heartbeat" };
  assert.equal((await post(app, "/emqx/authz", topic)).result, "allow");
  f.release();
  assert.deepEqual((await Promise.all(held)).map((a) => a.result), ["allow", "allow"]);
  assert.equal(f.checks(), 2);
});

Deno.test("EMQX hooks: a refused login is refused from memory; another password is checked", async () => {
  const f = fakeAuth();
  const app = emqxHookRoutes({ auth: f.auth, denialTtlMs: 60_000 });
  const wrong = { ...login, password: "wrong" };
  for (let i = 0; i < 5; i++) assert.equal((await post(app, "/emqx/authn", wrong)).result, "deny");
  assert.equal(f.checks(), 1);
  // A guess does not lock the machine out: its own token is checked.
  assert.equal((await post(app, "/emqx/authn", login)).result, "allow");
  assert.equal(f.checks(), 2);
});

import assert from "node:assert/strict";
import { callProxy, toSeconds } from "./proxy_client.ts";
import { refusedUrl, startStandIn } from "../tests/fakes/proxy_stand_in.ts";

Deno.test("callProxy classifies healthy, slow, refused and 500 proxies over real HTTP", async () => {
  const healthy = startStandIn("healthy");
  const slow = startStandIn("slow");
  const broken = startStandIn("error500");
  try {
    const ok = await callProxy({ url: `${healthy.url}/health`, method: "GET", timeoutMs: 2000 });
    assert.equal(ok.kind, "ok");
    if (ok.kind === "ok") {
      assert.equal(ok.httpStatus, 200);
      assert.equal(typeof ok.responseTime, "number");
      assert.ok(ok.responseTime >= 0 && ok.responseTime < 2);
      assert.deepEqual(ok.body, { status: "ok", controller_type: "E82", remark: "stand-in" });
    }
    assert.deepEqual(await callProxy({ url: `${slow.url}/health`, method: "GET", timeoutMs: 150 }), {
      kind: "timeout",
      timeoutMs: 150,
    });
    const refused = await callProxy({ url: `${refusedUrl()}/health`, method: "GET", timeoutMs: 2000 });
    assert.equal(refused.kind, "connection_error");
    if (refused.kind === "connection_error") {
      assert.equal(refused.errorType, "connection_refused");
      assert.match(refused.error, /refused/i);
    }
    const failed = await callProxy({ url: `${broken.url}/health`, method: "GET", timeoutMs: 2000 });
    assert.equal(failed.kind, "http_error");
    if (failed.kind === "http_error") {
      assert.equal(failed.httpStatus, 500);
      assert.deepEqual(failed.body, { error: "controller crashed" });
    }
    const posted = await callProxy({
      url: `${healthy.url}/controller/start`,
      method: "POST",
      timeoutMs: 2000,
      body: { mode: "auto" },
    });
    assert.equal(posted.kind, "ok");
    assert.deepEqual(healthy.requests.at(-1), {
      method: "POST",
      path: "/controller/start",
      body: '{"mode":"auto"}',
    });
  } finally {
    await Promise.all([healthy.close(), slow.close(), broken.close()]);
  }
});

Deno.test("callProxy rejects (makes no outcome) when the caller's signal aborts", async () => {
  const slow = startStandIn("slow");
  try {
    const stop = new AbortController();
    const call = callProxy({
      url: `${slow.url}/health`,
      method: "GET",
      timeoutMs: 5000,
      signal: stop.signal,
    });
    setTimeout(() => stop.abort(new Error("shutting down")), 50);
    await assert.rejects(call, /shutting down/);
  } finally {
    await slow.close();
  }
});

Deno.test("toSeconds keeps a tenth of a millisecond", () => {
  assert.equal(toSeconds(100), 0.1);
  assert.equal(toSeconds(12.34567), 0.0123);
});

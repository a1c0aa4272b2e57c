import assert from "node:assert/strict";
import { isConnectionError } from "./connection_error.ts";

Deno.test("connection failures are recognised by code or mysql2's fatal flag, through causes", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:3306"), { code: "ECONNREFUSED" });
  assert.equal(isConnectionError(refused), true);
  assert.equal(isConnectionError(new Error("Failed query", { cause: refused })), true);
  const lost = Object.assign(new Error("Connection lost"), { code: "PROTOCOL_CONNECTION_LOST", fatal: true });
  assert.equal(isConnectionError(new Error("a", { cause: new Error("b", { cause: lost }) })), true);
  assert.equal(isConnectionError(Object.assign(new Error("odd"), { fatal: true })), true);
});

Deno.test("statement errors and non-errors are not connection failures", () => {
  const duplicate = Object.assign(new Error("Duplicate entry"), { code: "ER_DUP_ENTRY", fatal: false });
  assert.equal(isConnectionError(duplicate), false);
  assert.equal(isConnectionError(new Error("Failed query", { cause: duplicate })), false);
  assert.equal(isConnectionError(new Error("slot locked")), false);
  assert.equal(isConnectionError("ECONNREFUSED"), false);
  assert.equal(isConnectionError(null), false);
  assert.equal(isConnectionError(undefined), false);
});

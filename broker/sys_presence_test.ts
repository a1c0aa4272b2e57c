import assert from "node:assert/strict";
import { parseSysPresence } from "./sys_presence.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

Deno.test("sys presence: EMQX client events name the machine by username, else client id; the gateway is left out", () => {
  const ignore = new Set(["gateway"]);
  assert.deepEqual(
    parseSysPresence(
      "$SYS/brokers/emqx@node1/clients/M-001/connected",
      enc({ username: "M-001", clientid: "M-001", connected_at: 1776160800000 }),
      ignore,
    ),
    { serial: "M-001", connected: true, at: new Date(1776160800000) },
  );
  const gone = parseSysPresence(
    "$SYS/brokers/n/clients/M-002:abc/disconnected",
    enc({ clientid: "M-002:abc", disconnected_at: 1776160900000, reason: "normal" }),
    ignore,
  );
  assert.deepEqual(gone, { serial: "M-002", connected: false, at: new Date(1776160900000) });
  assert.equal(
    parseSysPresence("$SYS/brokers/n/clients/gw-1/connected", enc({ username: "gateway" }), ignore),
    null,
  );
  assert.equal(parseSysPresence("$SYS/brokers/n/uptime", enc({}), ignore), null);
  assert.equal(parseSysPresence("$SYS/brokers/n/clients/bad id!/connected", enc({}), ignore), null);
  assert.equal(
    parseSysPresence("$SYS/brokers/n/clients/M-3/connected", new Uint8Array([1, 2]), ignore)?.serial,
    "M-3",
  );
});

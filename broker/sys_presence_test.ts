import assert from "node:assert/strict";
import { FakeConnection } from "../tests/fakes/fake_connection.ts";
import {
  parseSysPresence,
  SYS_PRESENCE_TOPICS,
  type SysPresenceEvent,
  watchSysPresence,
} from "./sys_presence.ts";

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

Deno.test("sys presence: the watcher subscribes to both event topics and hands on machines' events only", async () => {
  const connection = new FakeConnection(true);
  const seen: SysPresenceEvent[] = [];
  const off = await watchSysPresence(connection, (e) => seen.push(e), new Set(["gateway"]));
  assert.deepEqual(connection.subscriptions, [...SYS_PRESENCE_TOPICS]);
  connection.deliver("machine/M-1/heartbeat", "{}");
  connection.deliver("$SYS/brokers/n/clients/gw/connected", JSON.stringify({ username: "gateway" }));
  connection.deliver(
    "$SYS/brokers/n/clients/M-7/connected",
    JSON.stringify({ username: "M-7", connected_at: 5 }),
  );
  connection.deliver("$SYS/brokers/n/clients/M-7/disconnected", JSON.stringify({ username: "M-7" }));
  assert.deepEqual(seen.map((e) => `${e.serial}:${e.connected}`), ["M-7:true", "M-7:false"]);
  off();
  connection.deliver("$SYS/brokers/n/clients/M-8/connected", "{}");
  assert.equal(seen.length, 2, "removed");
});

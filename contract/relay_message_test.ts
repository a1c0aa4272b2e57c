import assert from "node:assert/strict";
import { encodeRelayMessage, parseRelayMessage } from "./relay_message.ts";

Deno.test("relay message: what one process encodes another parses; anything else is ignored", () => {
  const presence = {
    type: "presence" as const,
    serial: "M-1",
    online: true,
    at: "2026-04-14T10:00:00.000Z",
    source: "broker" as const,
  };
  const sale = { type: "sale" as const, serial: "M-1", slot: 2, quantity: 1, amount: 30, at: presence.at };
  const raw = encodeRelayMessage({ v: 1, o: "gw-a:1234", p: [presence], b: { events: [sale], dropped: 3 } });
  assert.deepEqual(JSON.parse(raw), {
    v: 1,
    o: "gw-a:1234",
    p: [presence],
    b: { events: [sale], dropped: 3 },
  });
  assert.deepEqual(parseRelayMessage(raw), {
    v: 1,
    o: "gw-a:1234",
    p: [presence],
    b: { events: [sale], dropped: 3 },
  });
  assert.equal(
    encodeRelayMessage({ v: 1, o: "gw-a", p: [], b: { events: [], dropped: 0 } }),
    '{"v":1,"o":"gw-a"}',
    "empty parts are left out (a keepalive)",
  );
  assert.deepEqual(parseRelayMessage('{"v":1,"o":"gw-a"}'), { v: 1, o: "gw-a" });
  for (
    const bad of [
      "not json",
      "{}",
      '{"v":2,"o":"gw-a"}',
      '{"v":1,"o":""}',
      JSON.stringify({ v: 1, o: "x", p: [{ ...presence, source: "rumour" }] }),
      JSON.stringify({ v: 1, o: "x", b: { events: [{ type: "unknown" }], dropped: 0 } }),
      JSON.stringify({ v: 1, o: "x", b: { events: [{ ...sale, serial: "" }], dropped: 0 } }),
    ]
  ) assert.equal(parseRelayMessage(bad), null, bad);
});

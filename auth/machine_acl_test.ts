import assert from "node:assert/strict";
import { isTopicAllowed, machineTopics } from "./machine_acl.ts";

const m1 = { username: "M-001", gateway: false };
const gw = { username: "star-cloud-gateway", gateway: true };

Deno.test("machine ACL truth table: own uplink topics and own command topic only", () => {
  const cases: [typeof m1, string, string, boolean][] = [
    [m1, "publish", "machine/M-001/heartbeat", true],
    [m1, "publish", "machine/M-001/error", true],
    [m1, "publish", "machine/M-001/transaction", true],
    [m1, "publish", "machine/M-001/command/ack", true],
    [m1, "subscribe", "machine/M-001/command", true],
    // another machine's topics
    [m1, "publish", "machine/M-002/heartbeat", false],
    [m1, "subscribe", "machine/M-002/command", false],
    // a machine may not forge commands, not even for itself
    [m1, "publish", "machine/M-001/command", false],
    [m1, "publish", "machine/M-002/command", false],
    // nor subscribe to its uplink or with wildcards / shared subscriptions
    [m1, "subscribe", "machine/M-001/heartbeat", false],
    [m1, "subscribe", "machine/+/command", false],
    [m1, "subscribe", "machine/M-001/#", false],
    [m1, "subscribe", "#", false],
    [m1, "subscribe", "$share/g/machine/M-001/command", false],
    [m1, "publish", "machine/M-001/unknown", false],
    [m1, "publish", "mcs/events/deviceService/start", false],
    [m1, "all", "machine/M-001/heartbeat", false],
    // usernames that are not serials get nothing
    [{ username: "M/001", gateway: false }, "publish", "machine/M/001/heartbeat", false],
    [{ username: "", gateway: false }, "publish", "machine//heartbeat", false],
    [{ username: "+", gateway: false }, "subscribe", "machine/+/command", false],
    // the gateway publishes commands to any machine and subscribes to the uplink
    [gw, "publish", "machine/M-001/command", true],
    [gw, "publish", "machine/M-999/command", true],
    [gw, "subscribe", "$share/gateway/machine/+/heartbeat", true],
  ];
  for (const [who, action, topic, expected] of cases) {
    assert.equal(isTopicAllowed(who, action, topic), expected, `${who.username} ${action} ${topic}`);
  }
});

Deno.test("machineTopics lists exactly the topics a machine may use", () => {
  assert.deepEqual(machineTopics("M-001"), {
    publish: [
      "machine/M-001/heartbeat",
      "machine/M-001/error",
      "machine/M-001/transaction",
      "machine/M-001/command/ack",
    ],
    subscribe: ["machine/M-001/command"],
  });
});

Deno.test("service ACL: publish and subscribe under mcs/events/ only, never a machine's topics", () => {
  const svc = { username: "devices", gateway: false, service: true };
  const cases: [string, string, boolean][] = [
    ["publish", "mcs/events/ProxyService/status/1", true],
    ["publish", "mcs/events/deviceService/start", true],
    ["subscribe", "mcs/events/ProxyService/status/+", true],
    ["subscribe", "mcs/events/#", true],
    ["publish", "mcs/events/#", false],
    ["publish", "machine/M-001/heartbeat", false],
    ["publish", "machine/M-001/command", false],
    ["subscribe", "machine/+/command", false],
    ["subscribe", "#", false],
    ["subscribe", "$share/g/mcs/events/#", false],
    ["publish", "mcs/eventsX", false],
    ["all", "mcs/events/x", false],
  ];
  for (const [action, topic, expected] of cases) {
    assert.equal(isTopicAllowed(svc, action, topic), expected, `${action} ${topic}`);
  }
});

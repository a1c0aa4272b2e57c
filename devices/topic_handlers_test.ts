import assert from "node:assert/strict";
import { ValidationError } from "../lib/errors.ts";
import { filterCovers, TopicHandlers, topicMatches, validateTopicFilter } from "./topic_handlers.ts";

Deno.test("topicMatches follows the MQTT wildcard rules", () => {
  const cases: [string, string, boolean][] = [
    ["custom/topic", "custom/topic", true],
    ["custom/topic", "custom/topic/x", false],
    ["custom/topic", "custom", false],
    ["mcs/events/ProxyService/status/+", "mcs/events/ProxyService/status/7", true],
    ["mcs/events/ProxyService/status/+", "mcs/events/ProxyService/status", false],
    ["mcs/events/ProxyService/status/+", "mcs/events/ProxyService/status/7/x", false],
    ["mcs/events/ProxyService/status/+", "mcs/events/ProxyService/status/", true], // + matches an empty level
    ["mcs/events/deviceService/+", "mcs/events/deviceService/start", true],
    ["mcs/events/deviceService/+", "mcs/events/DeviceService/start", false], // case matters
    ["mcs/#", "mcs", true], // # matches the parent level
    ["mcs/#", "mcs/events/a/b/c", true],
    ["mcs/#", "mcsx/events", false],
    ["#", "anything/at/all", true],
    ["#", "$SYS/broker/uptime", false],
    ["+/broker/uptime", "$SYS/broker/uptime", false],
    ["$SYS/#", "$SYS/broker/uptime", true],
    ["+/+", "a/b", true],
    ["+/+", "a", false],
    ["+/b/#", "a/b", true],
    ["$share/g1/machine/+/heartbeat", "machine/M-1/heartbeat", true],
  ];
  for (const [filter, topic, expected] of cases) {
    assert.equal(topicMatches(filter, topic), expected, `${filter} vs ${topic}`);
  }
});

Deno.test("validateTopicFilter rejects misplaced wildcards", () => {
  for (const good of ["a", "a/+/b", "a/#", "#", "+", "+/+/#"]) validateTopicFilter(good);
  for (const bad of ["", "a/#/b", "a#", "a/b+", "+a/b", "#/a"]) {
    assert.throws(() => validateTopicFilter(bad), ValidationError, bad);
  }
});

Deno.test("filterCovers says when one subscription already receives another's topics", () => {
  assert.equal(filterCovers("mcs/#", "mcs/events/ProxyService/status/+"), true);
  assert.equal(filterCovers("a/+", "a/b"), true);
  assert.equal(filterCovers("a/+", "a/+"), true);
  assert.equal(filterCovers("a/b", "a/+"), false);
  assert.equal(filterCovers("a/+", "a/#"), false);
  assert.equal(filterCovers("a/#", "a"), true);
  assert.equal(filterCovers("#", "$SYS/x"), false);
  assert.equal(filterCovers("custom/topic", "custom/topic"), true);
  assert.equal(filterCovers("mcs/events/DeviceService/status/+", "custom/topic"), false);
});

Deno.test("TopicHandlers calls every matching handler, survives a throwing one, and can remove one", async () => {
  const handlers = new TopicHandlers();
  const calls: string[] = [];
  handlers.register("custom/topic", (topic, payload) => void calls.push(`exact ${topic} ${payload}`));
  handlers.register("custom/+", () => {
    throw new Error("handler bug");
  });
  handlers.register("custom/#", async (_topic, _payload, message) => {
    await Promise.resolve();
    calls.push(`async ${JSON.stringify(message.json)}`);
  });
  handlers.register("custom/#", () => Promise.reject(new Error("async bug")));
  const off = handlers.register("custom/topic", () => void calls.push("removed"));
  off();
  off(); // idempotent

  assert.equal(handlers.dispatch("custom/topic", new TextEncoder().encode('{"a":1}')), 4);
  assert.equal(handlers.dispatch("other/topic", "x"), 0);
  await handlers.settled();
  assert.deepEqual(calls, ['exact custom/topic {"a":1}', 'async {"a":1}']);
  const stats = handlers.stats();
  assert.equal(stats.received, 2);
  assert.equal(stats.handled, 2);
  assert.equal(stats.failures, 2);
  assert.deepEqual(stats.filters, ["custom/topic", "custom/+", "custom/#"]);
});

Deno.test("TopicHandlers passes non-JSON payloads as text with json undefined", () => {
  const handlers = new TopicHandlers();
  let seen: unknown = "unset";
  handlers.register("t", (_t, payload, message) => void (seen = [payload, message.json]));
  handlers.dispatch("t", "not json");
  assert.deepEqual(seen, ["not json", undefined]);
});

Deno.test("TopicHandlers announces each new filter once and refuses an invalid one", () => {
  const announced: string[] = [];
  const handlers = new TopicHandlers((f) => announced.push(f));
  handlers.register("a/+", () => {});
  handlers.register("a/+", () => {});
  handlers.register("b/#", () => {});
  assert.deepEqual(announced, ["a/+", "b/#"]);
  assert.throws(() => handlers.register("a/#/b", () => {}), ValidationError);
  assert.deepEqual(announced, ["a/+", "b/#"]);
});

import assert from "node:assert/strict";
import { redactUrlPasswords, urlOrigin } from "./redact.ts";

Deno.test("redactUrlPasswords hides every URL password in a text, and nothing else", () => {
  assert.equal(
    redactUrlPasswords('bad "mysql://gw:s3cr3t@db:99999/gw" and redis://:p%40ss@r:6379/0'),
    'bad "mysql://gw:***@db:99999/gw" and redis://:***@r:6379/0',
  );
  assert.equal(
    redactUrlPasswords("mqtt://broker:1883 user@example.com"),
    "mqtt://broker:1883 user@example.com",
  );
  assert.equal(redactUrlPasswords("mqtt://user@broker:1883"), "mqtt://user@broker:1883");
});

Deno.test("urlOrigin keeps only scheme, host and port", () => {
  assert.equal(
    urlOrigin("https://u:p@hooks.example.com:8443/services/T0/B1/secret?x=1"),
    "https://hooks.example.com:8443",
  );
  assert.equal(urlOrigin("not a url"), "(not a URL)");
});

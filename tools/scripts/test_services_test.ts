import assert from "node:assert/strict";
import { missingLine } from "./test_services.ts";

Deno.test("test services: URLs already given are passed on and nothing is started", async () => {
  const env = {
    TEST_MYSQL_URL: "mysql://root@127.0.0.1:1",
    TEST_REDIS_URL: "redis://127.0.0.1:2/0",
    TEST_MQTT_URL: "mqtt://127.0.0.1:3",
  };
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./test_services.ts", import.meta.url).pathname,
      "sh",
      "-c",
      'echo "$TEST_MYSQL_URL $TEST_REDIS_URL $TEST_MQTT_URL"; exit 3',
    ],
    env,
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 3, `the command's exit code is passed on\n${err}`);
  assert.equal(new TextDecoder().decode(stdout).trim(), Object.values(env).join(" "));
  assert.doesNotMatch(err, /private/, "nothing started");
});

Deno.test("test services: a missing program is one line naming the packages", () => {
  assert.equal(
    missingLine([
      { name: "MariaDB", port: 3306, pkg: "mariadb-server", variable: "TEST_MYSQL_URL" },
      { name: "Redis", port: 6379, pkg: "redis-server", variable: "TEST_REDIS_URL" },
    ], ["mariadbd", "mariadb-install-db", "redis-server"]),
    "The tests need MariaDB, Redis: nothing answers on 127.0.0.1:3306, 127.0.0.1:6379 and mariadbd, " +
      "mariadb-install-db, redis-server are not installed; install mariadb-server redis-server " +
      "(apt-get install -y mariadb-server redis-server) or set TEST_MYSQL_URL / TEST_REDIS_URL.",
  );
});

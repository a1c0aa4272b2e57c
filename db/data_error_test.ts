import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { isDataError } from "./data_error.ts";
import { freshDatabase, query } from "../tests/support.ts";

Deno.test("data errors: MariaDB's refusals of a row are data errors, a lost connection or deadlock is not", async () => {
  const db = await freshDatabase();
  try {
    await query(db.url, "CREATE TABLE t (j JSON NOT NULL, s VARCHAR(4) NOT NULL, n INT NOT NULL)");
    const refused = async (values: unknown[]) => {
      try {
        await query(db.url, "INSERT INTO t (j, s, n) VALUES (?, ?, ?)", values);
      } catch (error) {
        return error;
      }
      throw new Error(`accepted ${JSON.stringify(values)}`);
    };
    const deep = "[".repeat(40) + "]".repeat(40);
    for (const values of [[deep, "a", 1], ['"\\ud800"', "a", 1], ["{}", "abcdef", 1], ["{}", "a", 2 ** 31]]) {
      const error = await refused(values);
      assert.ok(isDataError(error), `${JSON.stringify(values)}: ${(error as Error).message}`);
      // As a driver would wrap it.
      assert.ok(isDataError(new Error("Failed query", { cause: error })));
    }
  } finally {
    await db.drop();
  }
  for (
    const code of ["ECONNREFUSED", "PROTOCOL_CONNECTION_LOST", "ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]
  ) {
    assert.equal(isDataError(Object.assign(new Error(code), { code })), false, code);
  }
  assert.equal(isDataError(new Error("anything else")), false);
});

Deno.test("data errors: SQLite's NOT NULL refusal is one, a busy file is not", () => {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec("CREATE TABLE t (a TEXT NOT NULL)");
    assert.throws(() => db.prepare("INSERT INTO t (a) VALUES (?)").run(null), (e) => isDataError(e));
  } finally {
    db.close();
  }
  assert.equal(
    isDataError(Object.assign(new Error("database is locked"), { code: "ERR_SQLITE_ERROR", errcode: 5 })),
    false,
  );
});

/**
 * @module data_error
 * Tells "the database refuses this row" (a value out of range or too long, JSON it will not hold, a
 * NOT NULL or CHECK constraint) from everything else: retrying such a row can never succeed, so its
 * element goes to the dead letters rather than holding back the ones behind it. Anything not known
 * to be a data error (connection lost, deadlock, lock wait, a busy SQLite file) stays retryable.
 */

/** MySQL / MariaDB error codes of a row the server will never take as it is. */
const MYSQL_DATA_CODES = new Set([
  "ER_DATA_TOO_LONG",
  "ER_WARN_DATA_OUT_OF_RANGE",
  "ER_TRUNCATED_WRONG_VALUE",
  "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
  "ER_BAD_NULL_ERROR",
  "ER_INVALID_JSON_TEXT",
  "ER_INVALID_JSON_TEXT_IN_PARAM",
  "ER_INVALID_CHARACTER_STRING",
  "ER_CHECK_CONSTRAINT_VIOLATED",
  // MariaDB's JSON columns are LONGTEXT CHECK (JSON_VALID(...)): errno 4025.
  "ER_CONSTRAINT_FAILED",
]);

/** SQLite result codes (primary): TOOBIG, CONSTRAINT, MISMATCH, RANGE. */
const SQLITE_DATA_CODES = new Set([18, 19, 20, 25]);

/** True when `error`, or one of its causes, says the database refused the data itself. */
export function isDataError(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== null && typeof e === "object" && depth < 8; depth++) {
    const { code, sqlState, errno, errcode, cause } = e as {
      code?: unknown;
      sqlState?: unknown;
      errno?: unknown;
      errcode?: unknown;
      cause?: unknown;
    };
    if (typeof code === "string" && MYSQL_DATA_CODES.has(code)) return true;
    if (errno === 4025) return true;
    // SQLSTATE class 22: data exception (string too long, numeric out of range, bad datetime, …).
    if (typeof sqlState === "string" && sqlState.startsWith("22")) return true;
    if (code === "ERR_SQLITE_ERROR" && typeof errcode === "number" && SQLITE_DATA_CODES.has(errcode & 0xff)) {
      return true;
    }
    e = cause;
  }
  return false;
}

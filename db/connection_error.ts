/**
 * @module connection_error
 * Tells "the database could not be reached" (refused, reset, timed out, connection lost) from an
 * error of the statement itself, by the codes Node and mysql2 put on the error or its causes.
 * The worker retries the former without using up a job's attempts, even when the database is
 * back by the time it looks.
 */

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "ER_CONNECTION_KILLED",
]);

/** True when `error`, or one of its causes, says the connection to the database failed. */
export function isConnectionError(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== null && typeof e === "object" && depth < 8; depth++) {
    const { code, fatal, cause } = e as { code?: unknown; fatal?: unknown; cause?: unknown };
    if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
    // mysql2 marks errors that leave the connection unusable as fatal.
    if (fatal === true) return true;
    e = cause;
  }
  return false;
}

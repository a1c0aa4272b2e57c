/**
 * @module parse_json
 * Reads a JSON column as MySQL / MariaDB hand it back: MariaDB returns JSON columns as text, MySQL
 * as objects. Text that does not parse reads as `null`.
 */

/** MariaDB returns JSON columns as text; MySQL as objects. */
export function parseJson<T>(value: unknown): T | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") {
    try {
      return JSON.parse(value) as T;
    } catch {
      return null;
    }
  }
  return value as T;
}

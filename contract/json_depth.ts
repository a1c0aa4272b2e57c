/**
 * @module json_depth
 * How deeply a JSON payload may nest and still be stored (MariaDB's JSON columns), checked before
 * anything is accepted.
 */

/**
 * Levels of objects and arrays a payload may have (the payload itself is one): what MariaDB's JSON
 * columns accept (`JSON_VALID` fails from 32 on). Deeper payloads could never be stored; checked
 * here so the answer does not depend on how much stack `JSON.stringify` happens to have left.
 */
export const MAX_PAYLOAD_DEPTH = 31;

/** True when `value` has more than `limit` levels of objects and arrays (scalars have none). */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (limit <= 0) return true;
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    if (nestedDeeperThan(child, limit - 1)) return true;
  }
  return false;
}

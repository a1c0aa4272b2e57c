/**
 * @module storable
 * What the database can hold, as zod pieces every door uses (MQTT jobs, the outgoing list, the
 * HTTP API), identically for MySQL/MariaDB and SQLite: a value that passes is stored by both, a
 * value that fails is refused before it is accepted (a dead letter at once, or a 422 naming the
 * field), never retried against a database that will refuse it again.
 *
 * - integers in an `INT` column: -2,147,483,648 … 2,147,483,647;
 * - `amount` in `DECIMAL(12,2)`: at most 9,999,999,999.99;
 * - text: well-formed Unicode (no lone surrogate such as `"\ud800"`, which UTF-8 cannot encode);
 * - JSON: at most {@link MAX_PAYLOAD_DEPTH} levels, every key and string well-formed.
 */
import { z } from "zod";
import { MAX_PAYLOAD_DEPTH } from "./json_depth.ts";

export const SQL_INT_MIN = -2_147_483_648;
export const SQL_INT_MAX = 2_147_483_647;
/** The largest value of a `DECIMAL(12,2)` column (`transactions.amount`). */
export const AMOUNT_MAX = 9_999_999_999.99;
/** Bytes a `TEXT` column holds (`machine_logs.message`). */
export const TEXT_MAX_BYTES = 65_535;

const LONE_SURROGATE = "contains a lone surrogate (not valid Unicode, cannot be stored)";

/** An integer an `INT` column holds. */
export function sqlInt() {
  return z.number().int().min(SQL_INT_MIN).max(SQL_INT_MAX);
}

/**
 * Why `value` cannot be stored as JSON, with the path to the first offending place; undefined when
 * it can. The walk stops at the depth limit, so a hostile 20,000-level payload costs nothing.
 */
export function unstorableJson(
  value: unknown,
  maxDepth = MAX_PAYLOAD_DEPTH,
): { path: (string | number)[]; message: string } | undefined {
  const path: (string | number)[] = [];
  const walk = (v: unknown, depth: number): string | undefined => {
    if (typeof v === "string") return v.isWellFormed() ? undefined : LONE_SURROGATE;
    if (v === null || typeof v !== "object") return undefined;
    if (depth >= maxDepth) return `nested deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        const issue = walk(v[i], depth + 1);
        if (issue) return issue;
        path.pop();
      }
      return undefined;
    }
    for (const [key, child] of Object.entries(v)) {
      path.push(key);
      if (!key.isWellFormed()) return `key ${LONE_SURROGATE}`;
      const issue = walk(child, depth + 1);
      if (issue) return issue;
      path.pop();
    }
    return undefined;
  };
  const message = walk(value, 0);
  return message ? { path, message } : undefined;
}

/** Adds {@link unstorableJson}'s finding as an issue at its path. */
function checkStorable(value: unknown, ctx: z.RefinementCtx): void {
  const issue = unstorableJson(value);
  if (issue) ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
}

/** A JSON object that a JSON column of both dialects stores (the payload is the first level). */
export function storableJsonObject() {
  return z.record(z.string(), z.unknown()).superRefine(checkStorable);
}

/**
 * @module machine_summary
 * A `machines` row as a {@link MachineSummary}: the same mapping on MySQL and SQLite, since both
 * schemas hand these columns back with the same names and types.
 */
import type { MachineSummary } from "./store.ts";

/** Keeps the summary's columns of a `machines` row of either dialect (the row has more). */
export function toSummary(row: Readonly<MachineSummary>): MachineSummary {
  return {
    serialNo: row.serialNo,
    name: row.name,
    registered: row.registered,
    lastHeardAt: row.lastHeardAt,
    temperature: row.temperature,
    currentPage: row.currentPage,
    createdAt: row.createdAt,
  };
}

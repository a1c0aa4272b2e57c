/**
 * @module docs_section
 * Puts the last full run's figures into docs/benchmarks.md between its markers, so that figures
 * that change with every run are written by the bench, never by hand.
 */

export const START = "<!-- bench:last-run";
export const END = "<!-- /bench:last-run -->";

/** `doc` with everything between the markers replaced by `section`; throws when a marker is missing. */
export function withLastRun(doc: string, section: string): string {
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/benchmarks.md has no ${START} … ${END} markers`);
  const afterStart = doc.indexOf("\n", start) + 1;
  return `${doc.slice(0, afterStart)}\n${section.trim()}\n\n${doc.slice(end)}`;
}

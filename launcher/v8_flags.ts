/**
 * @module v8_flags
 * The V8 heap limits the launcher gives the gateway (`GATEWAY_HEAP_MB`: 128, or 80 in the process
 * that runs the embedded broker). Left to itself V8 lets a busy gateway's heap grow to 300+ MB
 * before collecting; the gateway's live data is small (about 40 MB: every buffer of messages and
 * commands in flight is bounded), so a capped old space keeps its RSS under 200 MB under the
 * benchmarks' full load.
 *
 * Within the cap, how often V8 runs a full (mark-compact) collection decides the downlink's tail:
 * under a 128 MB cap V8 grows the heap by only 1.3× the live data between two, so at 1,000
 * commands/s one came every second, and each slowed 10-25 commands to 20-30 ms. From 128 MB on,
 * the heap may grow 2.5× (`--heap-growing-percent=150`) with 6 MB semi-spaces per 128 MB (fewer
 * in-flight requests promoted): a full collection every few seconds, for about 30 MB more RSS
 * at the peak. Measured (`deno task bench`): downlink p99 17 ms instead of 22-28, RSS peak 196 MB.
 * Smaller heaps (the embedded broker's 80 MB, already near its live data) keep V8's growth.
 */

import { DEFAULT_HEAP_MB } from "../config.ts";

/** `--v8-flags=…` for `deno run` / `deno compile`; none when `heapMb` is 0 (V8's defaults). */
export function v8Flags(heapMb: number): string[] {
  if (heapMb <= 0) return [];
  const full = DEFAULT_HEAP_MB.external; // the heap the growth below was measured with
  if (heapMb >= full) {
    const semiSpaceMb = Math.min(16, Math.floor((heapMb * 6) / full));
    return [
      `--v8-flags=--max-old-space-size=${heapMb},--max-semi-space-size=${semiSpaceMb},--heap-growing-percent=150`,
    ];
  }
  // The young generation scales with the limit, within V8's usual 1-16 MB per semi-space.
  const semiSpaceMb = Math.max(1, Math.floor(heapMb / 32));
  return [`--v8-flags=--max-old-space-size=${heapMb},--max-semi-space-size=${semiSpaceMb}`];
}

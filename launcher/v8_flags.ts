/**
 * @module v8_flags
 * The V8 heap limits the launcher gives the gateway (`GATEWAY_HEAP_MB`, default 128). Left to
 * itself V8 lets a busy gateway's heap grow to 300+ MB before collecting; the gateway's live data
 * is small (every buffer of messages and commands in flight is bounded), so a 128 MB old space and
 * 4 MB semi-spaces keep its RSS under 200 MB under the benchmarks' full load.
 */

/** `--v8-flags=…` for `deno run` / `deno compile`; none when `heapMb` is 0 (V8's defaults). */
export function v8Flags(heapMb: number): string[] {
  if (heapMb <= 0) return [];
  // The young generation scales with the limit, within V8's usual 1-16 MB per semi-space.
  const semiSpaceMb = Math.min(16, Math.max(1, Math.floor(heapMb / 32)));
  return [`--v8-flags=--max-old-space-size=${heapMb},--max-semi-space-size=${semiSpaceMb}`];
}

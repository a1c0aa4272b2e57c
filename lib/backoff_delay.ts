/** @module backoff_delay — the one retry schedule of every loop (queue jobs, MQTT reconnects, pushes). */

/** Exponential backoff with full jitter, capped. `attempt` counts from 1. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

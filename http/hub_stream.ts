/**
 * @module hub_stream
 * One Server-Sent Events stream of the event hub's batches, shared by the console's live view and
 * the API's `/api/v1/events`: a `hello`, then each batch as `batch` (as `shape` makes it, or none
 * when it returns undefined), a ping every 15 s so proxies keep it open, until the client leaves or
 * `signal` aborts. `gauge.open` counts the streams open, for the callers' caps.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { EventHub, HubBatch } from "../lib/event_hub.ts";

export function streamHub(
  c: Context,
  hub: EventHub,
  signal: AbortSignal,
  gauge: { open: number },
  shape: (batch: HubBatch) => unknown = (batch) => batch,
): Response {
  return streamSSE(c, async (stream) => {
    gauge.open++;
    const ended = new Promise<void>((resolve) => {
      stream.onAbort(resolve);
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    const off = hub.subscribe((batch) => {
      const data = shape(batch);
      if (data === undefined) return;
      stream.writeSSE({ event: "batch", data: JSON.stringify(data) }).catch(() => {});
    });
    const ping = setInterval(() => stream.write(": ping\n\n").catch(() => {}), 15_000);
    try {
      await stream.writeSSE({ event: "hello", data: "{}", retry: 3000 });
      await ended;
    } finally {
      clearInterval(ping);
      off();
      gauge.open--;
    }
  });
}

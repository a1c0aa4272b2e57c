/**
 * @module events
 * `GET /api/v1/events`: the gateway's live events as Server-Sent Events, for the back office
 * (the console reads the same hub at `/console/events`). Each `batch` event is
 * `{"events": [...], "dropped": n}`; `types=presence,command` keeps only those kinds. With Redis
 * the events are every gateway process's (the event relay, `app/event_relay.ts`), whichever
 * process this stream is on; without Redis there is one process anyway.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { EventHub, HubEvent } from "../../lib/event_hub.ts";
import { UnavailableError } from "../../lib/errors.ts";
import { streamHub } from "../hub_stream.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";

const TYPES = ["heartbeat", "error", "sale", "command", "presence"] as const;

export interface EventRoutesDeps {
  hub: EventHub;
  /** Ends every stream (the gateway aborts it before the HTTP server drains). */
  signal: AbortSignal;
  maxStreams?: number;
}

export function eventRoutes(deps: EventRoutesDeps): OpenAPIHono {
  const app = apiApp();
  const max = deps.maxStreams ?? 32;
  const streams = { open: 0 };
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/events",
      tags: ["events"],
      summary: "Live events (Server-Sent Events): heartbeats, errors, sales, command transitions, presence",
      description:
        'Each message is `event: batch` with `data: {"events": [...], "dropped": n}`, sent at most ' +
        "every 500 ms (the last heartbeat per machine; other kinds capped at 200 a batch, the rest counted " +
        'in dropped). Presence: `{"type": "presence", "serial", "online", "at", "source": ' +
        '"broker"|"heartbeat"|"silence"}`. With Redis, every gateway process\'s events (one batch per ' +
        "process and flush). A comment line every 15 s keeps proxies from closing it.",
      security: [{ [BEARER]: [] }],
      request: {
        query: z.object({
          types: z.string().regex(new RegExp(`^(${TYPES.join("|")})(,(${TYPES.join("|")}))*$`)).optional()
            .openapi({ example: "presence,command", description: `Comma-separated: ${TYPES.join(", ")}` }),
        }),
      },
      responses: {
        200: { description: "The stream", content: { "text/event-stream": { schema: z.string() } } },
        503: errorResponse("Too many open streams, or shutting down"),
        ...COMMON_ERRORS,
      },
    }),
    (c) => {
      const { types } = c.req.valid("query");
      const wanted = types ? new Set(types.split(",")) : null;
      if (streams.open >= max || deps.signal.aborted) {
        c.header("Retry-After", "5");
        throw new UnavailableError(`Too many event streams open (${max}); retry later`);
      }
      return streamHub(c, deps.hub, deps.signal, streams, (batch) => {
        const events: HubEvent[] = wanted ? batch.events.filter((e) => wanted.has(e.type)) : batch.events;
        if (events.length === 0 && batch.dropped === 0) return undefined;
        return { events, dropped: batch.dropped };
      }) as never;
    },
  );
  return app;
}

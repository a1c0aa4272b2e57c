/**
 * @module dead_letters
 * The queues' dead letters over HTTP: `GET /api/v1/queues/{queue}/dead-letters` (paged, oldest
 * first, with reason and attempts), `POST …/replay` and `POST …/discard` with `{"ids": [...]}` for
 * some or `{"all": true}` for every one. `queue` is `incoming` (uplink jobs, `MQTT_INCOMING_QUEUE`)
 * or `outgoing` (commands, `MQTT_OUTGOING_QUEUE`). A replayed job goes to the tail as a new job.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { NotFoundError } from "../../lib/errors.ts";
import type { ReliableQueue } from "../../queue/reliable_queue.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";

export const DEAD_LETTER_QUEUES = ["incoming", "outgoing"] as const;
export type DeadLetterQueue = (typeof DEAD_LETTER_QUEUES)[number];

const QueueParam = z.object({
  queue: z.enum(DEAD_LETTER_QUEUES).openapi({
    param: { name: "queue", in: "path" },
    description: "incoming: uplink jobs; outgoing: commands",
    example: "incoming",
  }),
});

const DeadLetterSchema = z.object({
  id: z.string().openapi({ description: "Names the entry for replay/discard", example: "3f1c…" }),
  job: z.string().openapi({ description: "The element exactly as it was queued" }),
  reason: z.string().openapi({ example: "heartbeat job failed 5 times; last error: …" }),
  attempts: z.number().int(),
  failed_at: z.string(),
}).openapi("DeadLetter");

const Selection = z.union([
  z.object({ ids: z.array(z.string().min(1).max(128)).min(1).max(1000) }),
  z.object({ all: z.literal(true) }),
]).openapi("DeadLetterSelection", { example: { ids: ["3f1c…"] } });

const CountSchema = z.object({ count: z.number().int() }).openapi("DeadLetterCount");

export function deadLetterRoutes(queues: Partial<Record<DeadLetterQueue, ReliableQueue>>): OpenAPIHono {
  const app = apiApp();
  const queueOf = (name: DeadLetterQueue) => {
    const q = queues[name];
    if (!q) throw new NotFoundError(`The ${name} queue is not open in this process`);
    return q;
  };
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/queues/{queue}/dead-letters",
      tags: ["dead letters"],
      summary: "A queue's dead letters, oldest first",
      security: [{ [BEARER]: [] }],
      request: {
        params: QueueParam,
        query: z.object({
          limit: z.coerce.number().int().min(1).max(500).default(50),
          offset: z.coerce.number().int().min(0).default(0),
        }),
      },
      responses: {
        200: {
          description: "One page of dead letters and how many there are",
          content: {
            "application/json": {
              schema: z.object({ items: z.array(DeadLetterSchema), total: z.number().int() }),
            },
          },
        },
        404: errorResponse("The queue is not open in this process"),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { queue } = c.req.valid("param");
      const { limit, offset } = c.req.valid("query");
      const q = queueOf(queue);
      const [items, depth] = await Promise.all([q.deadLetters(limit, offset), q.depth()]);
      return c.json({ items, total: depth.dead }, 200);
    },
  );
  for (const action of ["replay", "discard"] as const) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/api/v1/queues/{queue}/dead-letters/${action}`,
        tags: ["dead letters"],
        summary: action === "replay"
          ? "Replay dead letters: back to the tail of the queue as new jobs"
          : "Discard dead letters for good",
        description: 'Send {"ids": [...]} for some (an id no longer there is skipped) or {"all": true}.',
        security: [{ [BEARER]: [] }],
        request: {
          params: QueueParam,
          body: { content: { "application/json": { schema: Selection } }, required: true },
        },
        responses: {
          200: {
            description: `How many were ${action === "replay" ? "replayed" : "discarded"}`,
            content: { "application/json": { schema: CountSchema } },
          },
          404: errorResponse("The queue is not open in this process"),
          ...COMMON_ERRORS,
        },
      }),
      async (c) => {
        const { queue } = c.req.valid("param");
        const body = c.req.valid("json");
        const q = queueOf(queue);
        const ids = "ids" in body ? body.ids : undefined;
        const count = action === "replay" ? await q.replayDeadLetters(ids) : await q.discardDeadLetters(ids);
        return c.json({ count }, 200);
      },
    );
  }
  return app;
}

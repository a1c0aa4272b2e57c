/**
 * @module relay_message
 * The message gateway processes exchange on the Redis channel `{Q}:events` (`Q`: the incoming
 * queue's name, see `app/event_relay.ts`), as JSON:
 * `{"v": 1, "o": origin, "p": [presence…], "b": {"events": […], "dropped": n}}`. `o` names the
 * process that sent it (receivers skip their own); `p` holds the presence changes that process
 * learnt itself (relayed always); `b` one batch of its live events (only while someone in the
 * fleet watches). Events have the shapes of `GET /api/v1/events`. The back office shares this
 * Redis, so a message that does not parse is ignored, never trusted.
 */
import { z } from "zod";

const text = z.string().max(1000);
const at = z.string().max(40);
const serial = z.string().min(1).max(64);

export const presenceEventSchema = z.object({
  type: z.literal("presence"),
  serial,
  online: z.boolean(),
  at,
  source: z.enum(["broker", "heartbeat", "silence"]),
});

const eventSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("heartbeat"),
    serial,
    at,
    temperature: z.number().nullable(),
    page: z.number().nullable(),
  }),
  z.object({ type: z.literal("error"), serial, code: text, level: text, message: text, at }),
  z.object({
    type: z.literal("sale"),
    serial,
    slot: z.number(),
    quantity: z.number(),
    amount: z.number(),
    at,
  }),
  z.object({
    type: z.literal("command"),
    status: text,
    ids: z.array(text).max(10_000),
    serials: z.array(serial).max(10_000),
  }),
  presenceEventSchema,
]);

export const relayMessageSchema = z.object({
  v: z.literal(1),
  o: z.string().min(1).max(200),
  p: z.array(presenceEventSchema).max(10_000).optional(),
  b: z.object({ events: z.array(eventSchema).max(2000), dropped: z.number().int().min(0) }).optional(),
});

export type RelayMessage = z.output<typeof relayMessageSchema>;

/** The message as JSON; empty parts are left out. */
export function encodeRelayMessage(m: RelayMessage): string {
  return JSON.stringify({
    v: 1,
    o: m.o,
    p: m.p?.length ? m.p : undefined,
    b: m.b && (m.b.events.length > 0 || m.b.dropped > 0) ? m.b : undefined,
  });
}

/** The message in `raw`, or null when it is not one (not JSON, another version, a field out of shape). */
export function parseRelayMessage(raw: string): RelayMessage | null {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = relayMessageSchema.safeParse(json);
  return parsed.success ? parsed.data : null;
}

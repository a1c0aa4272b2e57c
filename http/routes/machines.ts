/**
 * @module machines
 * `GET /api/v1/machines` (paged; `status=online|offline`) and `GET /api/v1/machines/{serial_no}`
 * (last heartbeat, temperature, slots, recent errors). A machine is online when it was heard
 * within `MACHINE_ONLINE_SECONDS`.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MachineSummary, Store } from "../../db/store.ts";
import { NotFoundError } from "../../lib/errors.ts";
import type { PresenceTracker } from "../../lib/presence.ts";
import { SERIAL_NO } from "../../contract/identity.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";

export interface MachineRoutesDeps {
  store: Store;
  onlineWindowSeconds: number;
  /** Presence from the broker (connect/disconnect) and heartbeats; without it, heartbeat age alone. */
  presence?: PresenceTracker;
  now?: () => Date;
}

export const SerialParam = z.object({
  serial_no: z.string().regex(SERIAL_NO, "must be 1-64 of A-Z a-z 0-9 _ -").openapi({
    param: { name: "serial_no", in: "path" },
    example: "M-001",
  }),
});

const iso = (d: Date | null) => d?.toISOString() ?? null;

const MachineSchema = z.object({
  serial_no: z.string(),
  name: z.string().nullable(),
  registered: z.boolean().openapi({ description: "False for a machine only ever seen on MQTT" }),
  online: z.boolean().openapi({
    description: "Connected by the broker's word where it tells (embedded broker; EMQX with " +
      "MQTT_PRESENCE_EVENTS), else heard within MACHINE_ONLINE_SECONDS",
  }),
  connected_at: z.string().nullable().openapi({
    description: "When the broker last reported it connected (since this gateway started); null: not known",
  }),
  disconnected_at: z.string().nullable().openapi({
    description: "When the broker last reported it gone (since this gateway started); null: not known",
  }),
  last_heard_at: z.string().nullable(),
  temperature: z.number().nullable(),
  current_page: z.number().int().nullable(),
  created_at: z.string(),
}).openapi("Machine");

/** A slot and its stock, as the machine detail and the set-stock route answer it. */
export const SlotSchema = z.object({
  slot_no: z.number().int().openapi({ example: 1 }),
  stock: z.number().int().openapi({ example: 20 }),
}).openapi("Slot");

const MachineDetailSchema = MachineSchema.extend({
  last_heartbeat: z.record(z.string(), z.unknown()).nullable(),
  slots: z.array(SlotSchema),
  recent_errors: z.array(z.object({
    code: z.string(),
    level: z.string(),
    message: z.string(),
    received_at: z.string(),
  })),
}).openapi("MachineDetail");

const listRoute = createRoute({
  method: "get",
  path: "/api/v1/machines",
  tags: ["machines"],
  summary: "List machines",
  security: [{ [BEARER]: [] }],
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(500).default(50),
      offset: z.coerce.number().int().min(0).default(0),
      status: z.enum(["online", "offline"]).optional(),
    }),
  },
  responses: {
    200: {
      description: "One page of machines, by serial_no",
      content: {
        "application/json": {
          schema: z.object({
            items: z.array(MachineSchema),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
        },
      },
    },
    ...COMMON_ERRORS,
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/api/v1/machines/{serial_no}",
  tags: ["machines"],
  summary: "One machine: last heartbeat, temperature, slots, recent errors",
  security: [{ [BEARER]: [] }],
  request: { params: SerialParam },
  responses: {
    200: { description: "The machine", content: { "application/json": { schema: MachineDetailSchema } } },
    404: errorResponse("No such machine"),
    ...COMMON_ERRORS,
  },
});

export function machineRoutes(deps: MachineRoutesDeps): OpenAPIHono {
  const app = apiApp();
  const since = () => new Date((deps.now?.() ?? new Date()).getTime() - deps.onlineWindowSeconds * 1000);
  const view = (m: MachineSummary, onlineSince: Date) => ({
    serial_no: m.serialNo,
    name: m.name,
    registered: m.registered,
    online: deps.presence
      ? deps.presence.isOnline(m.serialNo, m.lastHeardAt)
      : m.lastHeardAt !== null && m.lastHeardAt >= onlineSince,
    connected_at: iso(deps.presence?.get(m.serialNo)?.connectedAt ?? null),
    disconnected_at: iso(deps.presence?.get(m.serialNo)?.disconnectedAt ?? null),
    last_heard_at: iso(m.lastHeardAt),
    temperature: m.temperature,
    current_page: m.currentPage,
    created_at: m.createdAt.toISOString(),
  });

  app.openapi(listRoute, async (c) => {
    const { limit, offset, status } = c.req.valid("query");
    const onlineSince = since();
    const { items, total } = await deps.store.listMachines({
      limit,
      offset,
      online: status === undefined ? undefined : status === "online",
      onlineSince,
    });
    return c.json({ items: items.map((m) => view(m, onlineSince)), total, limit, offset }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const { serial_no } = c.req.valid("param");
    const m = await deps.store.getMachine(serial_no);
    if (!m) throw new NotFoundError(`No machine ${serial_no}`);
    return c.json({
      ...view(m, since()),
      last_heartbeat: m.lastHeartbeat,
      slots: m.slots.map((s) => ({ slot_no: s.slotNo, stock: s.stock })),
      recent_errors: m.recentErrors.map((e) => ({
        code: e.code,
        level: e.level,
        message: e.message,
        received_at: e.receivedAt.toISOString(),
      })),
    }, 200);
  });
  return app;
}

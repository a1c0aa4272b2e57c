/**
 * @module slots
 * `PUT /api/v1/machines/{serial_no}/slots` `{"slots": [{"slot_no", "stock"}, …]}`: sets the stock of
 * those slots (absolute, a restock or a count) and answers the machine's slots after the write. Sales
 * count down from it. In production the back office may write `machine_slots` itself; on an edge box
 * (embedded mode) this is the only way stock is ever known. A machine with no row (never registered,
 * never heard from) is 404, as for commands: stock is kept per machine the gateway knows.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { MAX_SLOTS_PER_WRITE, slotStockList } from "../../contract/slot_stock.ts";
import type { Store } from "../../db/store.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";
import { SerialParam, SlotSchema } from "./machines.ts";

const route = createRoute({
  method: "put",
  path: "/api/v1/machines/{serial_no}/slots",
  tags: ["machines"],
  summary: "Set the stock of a machine's slots",
  description:
    "Absolute stock per slot (a restock or a count): the slots named are set, added when new; the " +
    "machine's other slots are kept. Sales then count down from it, and a sale of more than a slot holds " +
    "raises an alert. One transaction. The machine must exist (registered with a token, or heard from).",
  security: [{ [BEARER]: [] }],
  request: {
    params: SerialParam,
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z.object({
            slots: slotStockList().openapi({
              description: `1 to ${MAX_SLOTS_PER_WRITE} slots, each slot_no once; slot_no and stock whole ` +
                "numbers from 0 to 2147483647",
              example: [{ slot_no: 1, stock: 20 }, { slot_no: 2, stock: 20 }],
            }),
          }).openapi("SlotStockUpdate"),
        },
      },
    },
  },
  responses: {
    200: {
      description: "The machine's slots after the write, by slot_no",
      content: {
        "application/json": {
          schema: z.object({
            serial_no: z.string().openapi({ example: "M-001" }),
            slots: z.array(SlotSchema),
          }).openapi("MachineSlots"),
        },
      },
    },
    404: errorResponse("No such machine"),
    ...COMMON_ERRORS,
  },
});

export function slotRoutes(deps: { store: Store }): OpenAPIHono {
  const app = apiApp();
  app.openapi(route, async (c) => {
    const { serial_no } = c.req.valid("param");
    const { slots } = c.req.valid("json");
    const after = await deps.store.setSlotStock(
      serial_no,
      slots.map((s) => ({ slotNo: s.slot_no, stock: s.stock })),
    );
    if (!after) {
      throw new NotFoundError(`No machine ${serial_no}: issue it a token or let it send a heartbeat first`);
    }
    return c.json({ serial_no, slots: after.map((s) => ({ slot_no: s.slotNo, stock: s.stock })) }, 200);
  });
  return app;
}

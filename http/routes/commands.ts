/**
 * @module commands
 * `POST /api/v1/machines/{serial_no}/commands` `{command, payload, ttl_seconds?, message_id?}` →
 * 202 `{message_id, status}`; `GET /api/v1/commands/{message_id}` → status, timestamps and the
 * machine's report; `GET /api/v1/machines/{serial_no}/commands` → its recent commands, newest first.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { CommandIntake } from "../../downlink/command_intake.ts";
import { COMMAND_NAME, MESSAGE_ID } from "../../contract/identity.ts";
import { storableJsonObject } from "../../contract/storable.ts";
import { COMMAND_STATUSES, type CommandRecord, type Store } from "../../db/store.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { SerialParam } from "./machines.ts";
import { apiApp, BEARER, COMMON_ERRORS, errorResponse } from "../openapi.ts";

export interface CommandRoutesDeps {
  store: Store;
  intake: CommandIntake;
  /** Upper bound of `ttl_seconds`. */
  maxTtlSeconds?: number;
}

const CommandSchema = z.object({
  message_id: z.string().openapi({ example: "MSG_1776130000000a1b2c3d4" }),
  serial_no: z.string().openapi({ example: "M-001" }),
  command: z.string().openapi({ example: "dispense" }),
  payload: z.record(z.string(), z.unknown()).openapi({
    example: { slot_no: 5, transaction_id: "T202604140001" },
  }),
  status: z.enum(COMMAND_STATUSES).openapi({
    description: "queued → sent (broker PUBACK) → delivered / succeeded / failed (machine ack), or expired " +
      "when the TTL passed first",
  }),
  source: z.string().openapi({ description: '"api" or "queue" (a producer\'s RPUSH)' }),
  detail: z.record(z.string(), z.unknown()).nullable().openapi({
    description: 'The machine\'s last ack as sent (minus message_id), e.g. {"status":"failed","detail":…}; ' +
      'or {"error"} when the gateway could not queue it',
  }),
  created_at: z.string(),
  expires_at: z.string(),
  sent_at: z.string().nullable(),
  acked_at: z.string().nullable(),
  updated_at: z.string(),
}).openapi("Command");

const MessageIdParam = z.object({
  message_id: z.string().regex(MESSAGE_ID, "must be 1-64 of A-Z a-z 0-9 _ . : -").openapi({
    param: { name: "message_id", in: "path" },
    example: "MSG_1776130000000a1b2c3d4",
  }),
});

function view(c: CommandRecord) {
  return {
    message_id: c.messageId,
    serial_no: c.serialNo,
    command: c.command,
    payload: c.payload,
    status: c.status,
    source: c.source,
    detail: c.detail,
    created_at: c.createdAt.toISOString(),
    expires_at: c.expiresAt.toISOString(),
    sent_at: c.sentAt?.toISOString() ?? null,
    acked_at: c.ackedAt?.toISOString() ?? null,
    updated_at: c.updatedAt.toISOString(),
  };
}

export function commandRoutes(deps: CommandRoutesDeps): OpenAPIHono {
  const app = apiApp();
  const maxTtl = deps.maxTtlSeconds ?? 30 * 86400;

  const body = z.object({
    command: z.string().regex(COMMAND_NAME, "must be 1-64 of A-Z a-z 0-9 _ . : -").openapi({
      example: "dispense",
    }),
    payload: storableJsonObject().default({}).openapi({
      description: "Any JSON object the database can store: at most 31 levels deep, no lone surrogate " +
        '(e.g. "\\ud800") in a key or string; anything else is a 422 naming the field',
      example: { slot_no: 5, transaction_id: "T202604140001" },
    }),
    ttl_seconds: z.number().int().min(1).max(maxTtl).optional().openapi({
      description:
        `Seconds the command may wait to reach the machine (default COMMAND_TTL_SECONDS, max ${maxTtl})`,
      example: 60,
    }),
    message_id: z.string().regex(MESSAGE_ID, "must be 1-64 of A-Z a-z 0-9 _ . : -").optional().openapi({
      description: "Optional idempotency key: sending the same request again returns the same command",
    }),
  }).openapi("CommandRequest");

  const accepted = z.object({
    message_id: z.string(),
    status: z.enum(COMMAND_STATUSES),
    expires_at: z.string(),
  }).openapi("CommandAccepted");

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/machines/{serial_no}/commands",
      tags: ["commands"],
      summary: "Send a machine a command",
      description: "Stores the command as queued and hands it to the downlink, which publishes it QoS 1 to " +
        "machine/{serial_no}/command in the order commands were accepted.",
      security: [{ [BEARER]: [] }],
      request: {
        params: SerialParam,
        body: { required: true, content: { "application/json": { schema: body } } },
      },
      responses: {
        202: { description: "Accepted", content: { "application/json": { schema: accepted } } },
        200: {
          description: "Already accepted with this message_id",
          content: { "application/json": { schema: accepted } },
        },
        400: errorResponse("The body is not valid JSON"),
        404: errorResponse("No such machine"),
        409: errorResponse("message_id already used for a different command"),
        503: errorResponse("The queue or database is unreachable; retry"),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { serial_no } = c.req.valid("param");
      const b = c.req.valid("json");
      const { command, created } = await deps.intake.accept({
        serialNo: serial_no,
        command: b.command,
        payload: b.payload,
        ttlSeconds: b.ttl_seconds,
        messageId: b.message_id,
      });
      const out = {
        message_id: command.messageId,
        status: command.status,
        expires_at: command.expiresAt.toISOString(),
      };
      return created ? c.json(out, 202) : c.json(out, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/machines/{serial_no}/commands",
      tags: ["commands"],
      summary: "A machine's recent commands, newest first",
      security: [{ [BEARER]: [] }],
      request: {
        params: SerialParam,
        query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
      },
      responses: {
        200: {
          description: "Recent commands",
          content: { "application/json": { schema: z.object({ items: z.array(CommandSchema) }) } },
        },
        404: errorResponse("No such machine and no commands for it"),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { serial_no } = c.req.valid("param");
      const { limit } = c.req.valid("query");
      const items = await deps.store.listCommands(serial_no, limit);
      if (items.length === 0 && !await deps.store.machineExists(serial_no)) {
        throw new NotFoundError(`No machine ${serial_no}`);
      }
      return c.json({ items: items.map(view) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/commands/{message_id}",
      tags: ["commands"],
      summary: "A command's status, timestamps and the machine's report",
      security: [{ [BEARER]: [] }],
      request: { params: MessageIdParam },
      responses: {
        200: { description: "The command", content: { "application/json": { schema: CommandSchema } } },
        404: errorResponse("No such command"),
        ...COMMON_ERRORS,
      },
    }),
    async (c) => {
      const { message_id } = c.req.valid("param");
      const command = await deps.store.getCommand(message_id);
      if (!command) throw new NotFoundError(`No command ${message_id}`);
      return c.json(view(command), 200);
    },
  );
  return app;
}

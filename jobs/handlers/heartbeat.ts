/**
 * @module heartbeat
 * `machine/{serial}/heartbeat` → `machines.last_heard_at`, `temperature`, `current_page`.
 * Extra fields are kept in `last_heartbeat`. Repeated heartbeats of one machine coalesce: last wins.
 */
import { z } from "zod";
import { defineJob } from "../job_handler.ts";
import { sqlInt } from "../../contract/storable.ts";

export const heartbeatSchema = z.looseObject({
  current_page: sqlInt().nullable().optional(),
  temperature: z.number().finite().nullable().optional(),
});

export type Heartbeat = z.infer<typeof heartbeatSchema>;

export const heartbeatJob = defineJob<Heartbeat>({
  type: "heartbeat",
  schema: heartbeatSchema,
  async handle(jobs, { store }) {
    await store.recordHeartbeats(jobs.map((j) => ({
      serialNo: j.serialNo,
      receivedAt: j.receivedAt,
      temperature: j.payload.temperature ?? null,
      currentPage: j.payload.current_page ?? null,
      payload: j.payload,
    })));
  },
});

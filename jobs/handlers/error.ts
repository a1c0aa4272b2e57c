/**
 * @module error
 * `machine/{serial}/error` → a `machine_logs` row and an alert (log at warning, optional webhook).
 */
import { z } from "zod";
import { defineJob } from "../job_handler.ts";
import { TEXT_MAX_BYTES } from "../../contract/storable.ts";

const encoder = new TextEncoder();

export const machineErrorSchema = z.looseObject({
  code: z.union([z.string().min(1).max(64), z.number().int().transform(String)]),
  // A TEXT column: 65,535 bytes of UTF-8, not characters.
  message: z.string().refine(
    (s) => s.length <= TEXT_MAX_BYTES / 3 || encoder.encode(s).length <= TEXT_MAX_BYTES,
    {
      message: `is longer than ${TEXT_MAX_BYTES} bytes in UTF-8`,
    },
  ).default(""),
  level: z.string().min(1).max(16).default("error"),
});

export type MachineError = z.infer<typeof machineErrorSchema>;

export const errorJob = defineJob<MachineError>({
  type: "error",
  schema: machineErrorSchema,
  async handle(jobs, { store, alert }) {
    await store.recordMachineLogs(jobs.map((j) => ({
      serialNo: j.serialNo,
      receivedAt: j.receivedAt,
      code: j.payload.code,
      level: j.payload.level,
      message: j.payload.message,
      payload: j.payload,
    })));
    // Alert only once the log row is stored, so a retried batch does not alert before it lands.
    for (const j of jobs) {
      alert({
        serialNo: j.serialNo,
        code: j.payload.code,
        level: j.payload.level,
        message: j.payload.message,
        receivedAt: j.receivedAt,
      });
    }
  },
});

/**
 * @module error
 * `machine/{serial}/error` → a `machine_logs` row and an alert (log at warning, optional webhook).
 */
import { z } from "zod";
import { defineJob } from "../job_handler.ts";

export const machineErrorSchema = z.looseObject({
  code: z.union([z.string().min(1).max(64), z.number().int().transform(String)]),
  message: z.string().max(65_535).default(""),
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

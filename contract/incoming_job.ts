/**
 * @module bridge_payload
 * The job element of `mqtt_incoming_jobs`, exactly as the contract and a Laravel consumer expect:
 * `{"type", "serial_no", "payload", "received_at"}` in that order, `received_at` in ISO 8601 with
 * the gateway's UTC offset and no fraction (`2026-04-14T09:00:00+08:00`).
 */
import { z } from "zod";
import { SERIAL_NO } from "./identity.ts";
import { storableJsonObject } from "./storable.ts";

/** What a `DATETIME(3)` column holds (years 1000-9999); SQLite would take more, MySQL refuses it. */
function storableDate(s: string): boolean {
  const t = Date.parse(s);
  if (Number.isNaN(t)) return false;
  const year = new Date(t).getUTCFullYear();
  return year >= 1000 && year <= 9999;
}

export const bridgePayloadSchema = z.object({
  type: z.string().min(1),
  serial_no: z.string().regex(SERIAL_NO, "is not a valid serial_no"),
  // Stored as JSON as is (last_heartbeat, machine_logs, transactions): refused here if it cannot be.
  payload: storableJsonObject(),
  received_at: z.string().refine(storableDate, "is not a date in the years 1000-9999"),
});

export type BridgePayload = z.infer<typeof bridgePayloadSchema>;

/** Serialises with the contract's key order, so the bytes match what the Go gateway of seed 004 made. */
export function encodeBridgePayload(p: BridgePayload): string {
  return JSON.stringify({
    type: p.type,
    serial_no: p.serial_no,
    payload: p.payload,
    received_at: p.received_at,
  });
}

/** `2026-04-14T09:00:00+08:00`: local time with its offset, as PHP's `DATE_ATOM` prints it. */
export function formatReceivedAt(date: Date, offsetMinutes = -date.getTimezoneOffset()): string {
  const local = new Date(date.getTime() + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${local.toISOString().slice(0, 19)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

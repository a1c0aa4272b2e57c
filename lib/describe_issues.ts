/** @module describe_issues — a zod error as one line naming each field that failed. */
import type { z } from "zod";

/** "temperature: Invalid input: expected number, received string" */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") + ": " : ""}${i.message}`).join("; ");
}

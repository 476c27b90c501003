/**
 * Turns zod's validation issues into one sentence naming each field, for errors a
 * person reads (API 400s, a bad models file at start).
 * @module
 */
import type { z } from "zod";

/** "query parameter "seconds": must be at least 1; …" */
export function describeIssues(error: z.ZodError, what: string): string {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join(".") : "(body)";
    return `${what} "${path}": ${issue.message}`;
  }).join("; ");
}

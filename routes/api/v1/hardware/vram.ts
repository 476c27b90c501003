/** `GET /api/v1/hardware/vram`: every device's figures, where they come from, and the pipelines. */
import type { Handlers, Services } from "../../../../server/http/context.ts";
import { buildVramReport } from "../../../../server/report.ts";

/**
 * Longest a serialized report is reused. It is rebuilt at once on a new sample or a new
 * event (every placement change emits one); in between, only activity counters and idle
 * times can be up to this old. Pollers are the hot path: this keeps them cheap.
 */
export const REPORT_REUSE_MS = 250;

const cache = new WeakMap<Services, { key: string; at: number; body: string }>();

/** Answers the current report (coalesced: at most one driver query per sampling interval). */
export const handler: Handlers = {
  GET: (c) => {
    const services = c.var.services;
    const sample = services.monitor.current();
    const key = `${sample.takenAt}:${services.events.lastSeq}`;
    const now = Date.now();
    let entry = cache.get(services);
    if (!entry || entry.key !== key || now - entry.at >= REPORT_REUSE_MS) {
      entry = { key, at: now, body: JSON.stringify(buildVramReport(services, sample)) };
      cache.set(services, entry);
    }
    return c.body(entry.body, 200, { "content-type": "application/json" });
  },
};

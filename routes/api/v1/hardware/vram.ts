/** `GET /api/v1/hardware/vram`: every device's figures, where they come from, and the pipelines. */
import type { Handlers } from "../../../../core/http/context.ts";
import { buildVramReport } from "../../../../core/report.ts";

/** Answers the current report (coalesced: at most one driver query per sampling interval). */
export const handler: Handlers = {
  GET: (c) => c.json(buildVramReport(c.var.services)),
};

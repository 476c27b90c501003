/** `GET /api/v1/models`: the catalog with each model's live state and last figures. */
import type { Handlers } from "../../../server/http/context.ts";

/** Answers `{models: ModelReport[]}` in catalog order. */
export const handler: Handlers = {
  GET: (c) => c.json({ models: c.var.services.scheduler.list() }),
};

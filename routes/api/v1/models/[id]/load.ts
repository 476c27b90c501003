/** `POST /api/v1/models/{id}/load`: body `{device?: "gpu" | "cpu"}`. Mutating: needs the token when one is set. */
import { z } from "zod";
import type { Handlers } from "../../../../../core/http/context.ts";
import { parseJsonBody } from "../../../../../core/http/validate.ts";
import { HttpError } from "../../../../../core/http/errors.ts";

/** The request body. */
export const bodySchema = z.object({
  device: z.enum(["gpu", "cpu"], { error: 'must be "gpu" or "cpu"' }).optional(),
}).strict();

/** Loads the model (default: on the GPU when one is usable, making room first) and answers its ModelReport. */
export const handler: Handlers = {
  POST: async (c) => {
    const { manager, offloader } = c.var.services;
    const id = c.req.param("id")!;
    manager.get(id); // 404 first
    const body = await parseJsonBody(c, bodySchema);
    const device = body.device ?? manager.defaultDevice;
    // The GPU goes through the policy: it makes room first, or says why it cannot.
    if (device === "gpu") {
      if (!offloader.state().available) {
        throw new HttpError(
          409,
          "no_gpu",
          `field "device": no GPU is usable (${c.var.services.monitor.reason}); load on "cpu"`,
        );
      }
      await offloader.ensureOnGpu(id);
    } else await manager.load(id, "cpu");
    return c.json(manager.get(id));
  },
};

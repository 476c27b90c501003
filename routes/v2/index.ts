/** `GET /v2`: the Open Inference Protocol's server metadata, with the extensions Headroom implements. */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { serverMetadata, serverMetadataSchema } from "@/server/oip/models.ts";

/** A read. */
export const config: RouteConfig = {
  summary: "Open Inference Protocol: server name, version and extensions",
  auth: "read",
  responses: { GET: { 200: serverMetadataSchema } },
};

/** Answers `$metadata_server_response`. */
export const handler: Handlers = {
  GET: (c) => c.json(serverMetadata()),
};

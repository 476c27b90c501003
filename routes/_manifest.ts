/**
 * Every route and the module that handles it, as Fresh's generated manifest lists
 * them: the path mirrors the file under routes/. Adding a route = adding a file and a
 * line here.
 * @module
 */
import type { Handlers } from "../core/http/context.ts";
import * as health from "./api/v1/health.ts";
import * as vram from "./api/v1/hardware/vram.ts";
import * as vramHistory from "./api/v1/hardware/vram/history.ts";
import * as vramStream from "./api/v1/hardware/vram/stream.ts";
import * as metrics from "./metrics.ts";

/** Path (Hono syntax) → the route module's handlers. */
export const routes: ReadonlyArray<readonly [path: string, handlers: Handlers]> = [
  ["/api/v1/health", health.handler],
  ["/api/v1/hardware/vram", vram.handler],
  ["/api/v1/hardware/vram/history", vramHistory.handler],
  ["/api/v1/hardware/vram/stream", vramStream.handler],
  ["/metrics", metrics.handler],
];

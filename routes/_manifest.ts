/**
 * Every route and the module that handles it, as Fresh's generated manifest lists
 * them: the path mirrors the file under routes/. Adding a route = adding a file and a
 * line here. `mutating` routes need the API token when one is set; `bodyLimit` caps
 * the request body (413 past it).
 * @module
 */
import type { Handlers } from "../core/http/context.ts";
import * as health from "./api/v1/health.ts";
import * as vram from "./api/v1/hardware/vram.ts";
import * as vramHistory from "./api/v1/hardware/vram/history.ts";
import * as vramStream from "./api/v1/hardware/vram/stream.ts";
import * as models from "./api/v1/models.ts";
import * as model from "./api/v1/models/[id].ts";
import * as modelLoad from "./api/v1/models/[id]/load.ts";
import * as modelOffload from "./api/v1/models/[id]/offload.ts";
import * as modelRehydrate from "./api/v1/models/[id]/rehydrate.ts";
import * as modelUnload from "./api/v1/models/[id]/unload.ts";
import * as infer from "./api/v1/pipelines/[id]/infer.ts";
import * as ocr from "./api/v1/ocr.ts";
import * as vramCheck from "./api/v1/hardware/vram/check.ts";
import * as chains from "./api/v1/chains.ts";
import * as modelPin from "./api/v1/models/[id]/pin.ts";
import * as modelUnpin from "./api/v1/models/[id]/unpin.ts";
import * as testLoad from "./api/v1/models/test-load.ts";
import * as modelSwitch from "./v1/models/switch.ts";
import * as pipelineStream from "./api/v1/pipelines/[id]/stream.ts";
import * as metrics from "./metrics.ts";
import * as index from "./index.tsx";
import * as staticBuild from "./static/build/[file].ts";

/** How a route is guarded. */
export interface RouteOptions {
  /** Needs the API token when one is configured. */
  mutating?: boolean;
  /** Largest request body in bytes (default 64 KiB). */
  bodyLimit?: number;
}

/** One route: its path (Hono syntax), handlers and guards. */
export type RouteEntry = readonly [path: string, handlers: Handlers, options?: RouteOptions];

const SMALL_BODY = 64 * 1024;

/** Every route the app serves. */
export const routes: readonly RouteEntry[] = [
  ["/api/v1/health", health.handler],
  ["/api/v1/hardware/vram", vram.handler],
  ["/api/v1/hardware/vram/history", vramHistory.handler],
  ["/api/v1/hardware/vram/stream", vramStream.handler],
  ["/api/v1/hardware/vram/check", vramCheck.handler, { bodyLimit: SMALL_BODY }],
  ["/api/v1/models", models.handler],
  ["/api/v1/models/test-load", testLoad.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/models/:id", model.handler],
  ["/api/v1/models/:id/load", modelLoad.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/models/:id/offload", modelOffload.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/models/:id/rehydrate", modelRehydrate.handler, {
    mutating: true,
    bodyLimit: SMALL_BODY,
  }],
  ["/api/v1/models/:id/unload", modelUnload.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/models/:id/pin", modelPin.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/models/:id/unpin", modelUnpin.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/chains", chains.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/v1/models/switch", modelSwitch.handler, { mutating: true, bodyLimit: SMALL_BODY }],
  ["/api/v1/pipelines/:id/stream", pipelineStream.handler],
  ["/api/v1/pipelines/:id/infer", infer.handler, { bodyLimit: 256 * 2 ** 20 }],
  ["/api/v1/ocr", ocr.handler, { bodyLimit: ocr.MAX_OCR_IMAGE_BYTES + 64 * 1024 }],
  ["/metrics", metrics.handler],
  ["/", index.handler],
  ["/static/build/:file", staticBuild.handler],
];

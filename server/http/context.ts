/**
 * The typed request context every route shares: Hono's `Context` carrying the
 * running service's parts, and the Fresh-style shape of a route module's handlers.
 * @module
 */
import type { Context } from "hono";
import type { z } from "zod";
import type { Config } from "../../core/config.ts";
import type { VramMonitor } from "../../core/monitor/vram_monitor.ts";
import type { Catalog } from "../../core/models/catalog.ts";
import type { EventLog } from "../../core/events.ts";
import type { Scheduler } from "../../core/placement/scheduler.ts";
import type { ProfileStore } from "../../core/store/profiles.ts";
import type { StreamLimiter } from "./limits.ts";
import type { CpuEngineReport } from "../../core/types.ts";
import type { EventCounters } from "../metrics/event_counters.ts";

/** The parts of the running service a route can use. */
export interface Services {
  config: Config;
  monitor: VramMonitor;
  catalog: Catalog;
  /** The only owner of placement: every request, load, move and switch goes through it. */
  scheduler: Scheduler;
  /** The CPU engine pipelines on the CPU run on, and why (null: none chosen, wasm). */
  cpuEngine: CpuEngineReport | null;
  events: EventLog;
  store: ProfileStore;
  /** Open SSE streams and WebSockets, bounded. */
  streams: StreamLimiter;
  startedAt: number;
  /** Aborted when the service begins to stop: long-lived streams close at once. */
  shutdown: AbortSignal;
  /** Totals kept from the event log since start (for /metrics). */
  counters: EventCounters;
  /** This node's name on /metrics (`Hostname`, as dcgm-exporter labels it). */
  hostname: string;
}

/** Hono's environment for this app: `c.var.services` is always set. */
export interface AppEnv {
  Variables: {
    services: Services;
    /** Every route of the app (the OpenAPI route describes them). */
    routes: readonly RouteEntry[];
  };
}

/** The context a route handler receives. */
export type RouteContext = Context<AppEnv>;

/** A route module's `handler` export, as in Fresh: one function per HTTP method. */
export type Handlers = Partial<
  Record<"GET" | "POST" | "PUT" | "DELETE", (c: RouteContext) => Response | Promise<Response>>
>;

/** How a route is guarded and described. */
export interface RouteOptions {
  /** One line for the OpenAPI document. */
  summary: string;
  /** Changes what runs on the GPU: its non-GET methods need the API token when one is set. */
  mutating?: boolean;
  /** Runs models: needs the token when HEADROOM_TOKEN_FOR_INFER is set. */
  infer?: boolean;
  /** A page or its assets: open even with HEADROOM_TOKEN_FOR_READS (the API it calls is not). */
  page?: boolean;
  /** Largest request body in bytes (default 64 KiB). */
  bodyLimit?: number;
  /** The JSON body's schema. */
  body?: z.ZodType;
  /** The query string's schema. */
  query?: z.ZodType;
  /** What a success answers, for the OpenAPI document. */
  produces?: "json" | "sse" | "ndjson" | "websocket" | "prometheus" | "html" | "asset";
  /** The body is an image (PNG/JPEG or multipart), not JSON. */
  image?: boolean;
}

/** One route: its path (Hono syntax), handlers and options. */
export type RouteEntry = readonly [path: string, handlers: Handlers, options: RouteOptions];

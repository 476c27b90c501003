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
import type { ReportFeed } from "../report.ts";

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
  /** The VRAM report, built once per change for the GET route, the SSE stream, the page and /metrics. */
  reports: ReportFeed;
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

/** An HTTP method a route module can handle. */
export type Method = "GET" | "POST" | "PUT" | "DELETE";

/** A route module's `handler` export, as in Fresh: one function per HTTP method. */
export type Handlers = Partial<
  Record<Method, (c: RouteContext) => Response | Promise<Response>>
>;

/**
 * Which token rule guards a route (see `needsToken` in ./auth.ts):
 * - `mutating`: changes what runs on the GPU; its non-GET methods need the token when one is set;
 * - `infer`: runs models; needs the token with HEADROOM_TOKEN_FOR_INFER (or _FOR_READS);
 * - `read`: an API read; needs the token with HEADROOM_TOKEN_FOR_READS;
 * - `page`: a page or its assets; always open (the API it calls is guarded).
 */
export type RouteAuth = "mutating" | "infer" | "read" | "page";

/** What a route answers, by method and then by status: the OpenAPI document's response schemas. */
export type RouteResponses = Partial<Record<Method, Partial<Record<number, z.ZodType>>>>;

/**
 * How a route is guarded and described: a route module's `config` export (Fresh's
 * `Route {handler, config}`), so a route's rules live beside its handler.
 */
export interface RouteConfig {
  /** One line for the OpenAPI document. */
  summary: string;
  /** Which token rule applies. */
  auth: RouteAuth;
  /** Largest request body in bytes (default 64 KiB). */
  bodyLimit?: number;
  /** The JSON body's schema. */
  body?: z.ZodType;
  /** The body is an image (PNG/JPEG or multipart), not JSON. */
  image?: boolean;
  /**
   * The body is JSON, or a JSON header followed by raw tensor bytes
   * (`application/octet-stream`, the Open Inference Protocol's binary tensor data): the
   * handler reads it itself, never as JSON alone.
   */
  binary?: boolean;
  /** The query string's schema (a function when it depends on the running config). */
  query?: z.ZodType | ((config: Config) => z.ZodType);
  /** What a success answers, for the OpenAPI document (default JSON; `empty`: a 200 with no body). */
  produces?: "json" | "sse" | "ndjson" | "websocket" | "prometheus" | "html" | "asset" | "empty";
  /** The JSON bodies it answers, per method and status (errors share one shape, declared once). */
  responses?: RouteResponses;
}

/** One route: its path (Hono syntax), handlers and config, as routes/_manifest.ts lists it. */
export type RouteEntry = readonly [path: string, handlers: Handlers, config: RouteConfig];

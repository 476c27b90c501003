/**
 * The typed request context every route shares: Hono's `Context` carrying the
 * running service's parts, typed by the route's path (its parameters) and its `config`
 * (the values the app validated), and the Fresh-style shape of a route module.
 * @module
 */
import type { Context } from "hono";
import type { ParamKeys } from "hono/types";
import type { z } from "zod";
import type { Config } from "../../core/config.ts";
import type { VramMonitor } from "../../core/monitor/vram_monitor.ts";
import type { Catalog } from "../../core/models/catalog.ts";
import type { EventLog } from "../../core/events.ts";
import type { Scheduler } from "../../core/placement/scheduler.ts";
import type { ProfileStore } from "../../core/store/profiles.ts";
import type { StreamLimiter } from "./limits.ts";
import type { LiftPaths } from "./json_body.ts";
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

/** An HTTP method a route module can handle. */
export type Method = "GET" | "POST" | "PUT" | "DELETE";

/** The zod schema a `config.query` gives (it may be a function of the running config). */
type QuerySchemaOf<Q> = Q extends z.ZodType ? Q
  : Q extends (config: Config) => infer S ? S extends z.ZodType ? S : never
  : never;

/**
 * What the app validated before the handler runs, by Hono's validation targets:
 * `c.req.valid("json")` is the body as `config.body` parsed it, `c.req.valid("query")`
 * the query string as `config.query` parsed it (each present only when the config has it).
 */
export interface ValidatedInput<C extends RouteConfig> {
  out:
    & (C extends { body: infer S extends z.ZodType } ? { json: z.output<S> } : Record<never, never>)
    & (C extends { query: infer Q } ? { query: z.output<QuerySchemaOf<Q>> } : Record<never, never>);
}

/**
 * The context a route handler receives. `P` is the route's path in Hono syntax
 * (`"/api/v1/models/:id"`): `c.req.param("id")` is then a `string`; `C` is `typeof config`.
 */
export type RouteContext<P extends string = string, C extends RouteConfig = RouteConfig> = Context<
  AppEnv,
  P,
  ValidatedInput<C>
>;

/** The path parameters' names of a path (none for an untyped path). */
type ParamNames<P extends string> = string extends P ? never : ParamKeys<P>;

/** Marks a route module's handlers with their path parameters (a type only). */
declare const PARAMS: unique symbol;

/**
 * A route module's `handler` export, as in Fresh: one function per HTTP method. Give the
 * route's path for typed parameters and `typeof config` for validated values:
 * `Handlers<"/api/v1/models/:id/load", typeof config>`; the generated manifest fails to
 * type-check when the path's parameters are not the file's.
 */
export type Handlers<P extends string = string, C extends RouteConfig = RouteConfig> =
  & { [M in Method]?: (c: RouteContext<P, C>) => Response | Promise<Response> }
  & { readonly [PARAMS]?: ParamNames<P> };

/**
 * Any route module's handlers, as the app calls them. Methods, not function properties:
 * TypeScript compares a method's parameter both ways, so every route's narrower
 * `Handlers<P, C>` fits here.
 */
export interface RouteHandlers {
  GET?(c: RouteContext): Response | Promise<Response>;
  POST?(c: RouteContext): Response | Promise<Response>;
  PUT?(c: RouteContext): Response | Promise<Response>;
  DELETE?(c: RouteContext): Response | Promise<Response>;
}

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
 * `Route {handler, config}`), so a route's rules live beside its handler. The app
 * enforces `params`, `query` and `body`; a route whose handlers read the validated values
 * declares `export const config = {…} satisfies RouteConfig` so `typeof config` keeps the
 * schemas' types for `Handlers<P, typeof config>`.
 */
export interface RouteConfig {
  /** One line for the OpenAPI document. */
  summary: string;
  /** Which token rule applies. */
  auth: RouteAuth;
  /** Largest request body in bytes (default 64 KiB). */
  bodyLimit?: number;
  /**
   * Most values (array elements and object members) the JSON body may hold, counted while
   * it streams in: more is a 413 before it is parsed, so one huge body never holds the thread.
   */
  maxElements?: number;
  /**
   * Path parameters that name a model the scheduler knows: the app answers the
   * unknown-model 404 before it reads or validates a body (an unknown id costs no upload).
   */
  params?: Readonly<Record<string, "model">>;
  /** The JSON body's schema: the app validates every non-GET body with it (a 400 names the field). */
  body?: z.ZodType;
  /**
   * Where the JSON body holds long values to convert while it is parsed (server/http/json_body.ts):
   * number arrays as a `Float64Array`, base64 `data:` URLs as their bytes, which the schema
   * then takes. A large body is parsed in a body worker, and what it converted comes back
   * by transfer: the main thread never walks millions of JSON numbers or base64 characters.
   */
  lift?: LiftPaths;
  /**
   * The route runs a model and takes `X-Headroom-Priority` (read with
   * server/http/priority.ts's `headerPriority`); the OpenAPI document declares the header.
   */
  priority?: boolean;
  /** The body is an image (PNG/JPEG or multipart), not JSON. */
  image?: boolean;
  /**
   * The body is JSON, or a JSON header followed by raw tensor bytes
   * (`application/octet-stream`, the Open Inference Protocol's binary tensor data): the
   * handler reads it itself, never as JSON alone.
   */
  binary?: boolean;
  /** The query string's schema (a function when it depends on the running config); validated by the app. */
  query?: z.ZodType | ((config: Config) => z.ZodType);
  /** What a success answers, for the OpenAPI document (default JSON; `empty`: a 200 with no body). */
  produces?: "json" | "sse" | "ndjson" | "websocket" | "prometheus" | "html" | "asset" | "empty";
  /** The JSON bodies it answers, per method and status (errors share one shape, declared once). */
  responses?: RouteResponses;
}

/** One route: its path (Hono syntax), handlers and config, as routes/_manifest.ts lists it. */
export type RouteEntry = readonly [path: string, handlers: RouteHandlers, config: RouteConfig];

/**
 * One entry of the generated manifest. The type checks that the module's handlers were
 * typed for this path's parameters (`Handlers<"/x/:id">` in a file that serves `/x/:name`
 * fails `deno check`).
 */
export function route<P extends string>(
  path: P,
  module: {
    handler: RouteHandlers & { readonly [PARAMS]?: ParamNames<P> };
    config: RouteConfig;
  },
): RouteEntry {
  return [path, module.handler, module.config];
}

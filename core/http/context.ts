/**
 * The typed request context every route shares: Hono's `Context` carrying the
 * running service's parts, and the Fresh-style shape of a route module's handlers.
 * @module
 */
import type { Context } from "hono";
import type { Config } from "../config.ts";
import type { VramMonitor } from "../monitor/vram_monitor.ts";
import type { Catalog } from "../models/catalog.ts";
import type { EventLog } from "../events.ts";
import type { Scheduler } from "../placement/scheduler.ts";
import type { ProfileStore } from "../store/profiles.ts";
import type { StreamLimiter } from "./limits.ts";
import type { CpuEngineReport } from "../types.ts";
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
  Variables: { services: Services };
}

/** The context a route handler receives. */
export type RouteContext = Context<AppEnv>;

/** A route module's `handler` export, as in Fresh: one function per HTTP method. */
export type Handlers = Partial<
  Record<"GET" | "POST" | "PUT" | "DELETE", (c: RouteContext) => Response | Promise<Response>>
>;

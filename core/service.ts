/**
 * The running service: picks the VRAM source, starts the monitor, reads the model
 * catalog, opens the profile store, creates the pipeline manager and the offloader,
 * builds the app. `main.ts` and the tests both start Headroom through {@link startService}.
 * @module
 */
import { join } from "node:path";
import type { Hono } from "hono";
import type { Config } from "./config.ts";
import { createApp } from "./app.ts";
import { EventLog } from "./events.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { type Catalog, loadCatalog } from "./models/catalog.ts";
import { chooseSource } from "./monitor/choose_source.ts";
import { VramMonitor } from "./monitor/vram_monitor.ts";
import { PipelineManager } from "./pipelines/manager.ts";
import { effectiveHeadroom, type ModelFootprint } from "./placement/budget.ts";
import { type DeviceView, VramOffloader } from "./placement/offloader.ts";
import { ProfileStore } from "./store/profiles.ts";
import { preparePageAssets } from "./islands/bundle.ts";
import { StreamLimiter } from "./http/limits.ts";
import { EventCounters } from "./metrics/event_counters.ts";

/** A started service: its app, its parts, and how to stop it. */
export interface Service extends AsyncDisposable {
  app: Hono<AppEnv>;
  services: Services;
  /** Tells long-lived streams (SSE, WebSockets) the service is stopping; they close at once. */
  beginShutdown(): void;
  close(): Promise<void>;
}

/** Starts every part of Headroom for `config` (nothing listens yet: serve `app.fetch`). */
export async function startService(config: Config): Promise<Service> {
  const catalog = await loadCatalog(config.modelsFile, config.dataDir);
  // The dashboard's island bundle: built once per process, never per request.
  await preparePageAssets();
  await Deno.mkdir(config.dataDir, { recursive: true });
  const store = await ProfileStore.open(config.kv ?? join(config.dataDir, "headroom.kv"));
  let manager: PipelineManager | null = null;
  const trackedBytes = () => manager?.trackedBytes() ?? 0;
  const { source, reason } = await chooseSource(config, trackedBytes);
  const monitor = new VramMonitor({
    source,
    reason,
    sampleMs: config.sampleMs,
    historyMs: config.historyMs,
    activeBytes: (index) => (index === 0 ? trackedBytes() : 0),
  });
  const events = new EventLog();
  const shutdown = new AbortController();
  const counters = new EventCounters(events);
  manager = new PipelineManager({
    catalog,
    events,
    profiles: store,
    gpuAvailable: source.kind !== "none",
    deviceUsedBytes: source.kind === "nvml" || source.kind === "cudart"
      ? () => monitor.sample().devices.reduce((sum, d) => sum + d.usedBytes, 0)
      : undefined,
  });
  const pipelines = manager;
  const offloader = new VramOffloader({
    target: pipelines,
    device: deviceView(monitor, trackedBytes),
    events,
    budgetFor: (total) => budgetBytes(config, total),
    headroomFor: (budget) => effectiveHeadroom(config.headroomBytes, budget),
    footprint: footprintOf(catalog, pipelines, store),
    onInsufficientVram: config.onInsufficientVram,
    queueLimit: config.queueLimit,
  });
  const unsubscribeEvents = events.subscribe((event) => {
    store.appendEvent(event).catch((error) => console.error("Saving an event failed:", error));
  });
  const unsubscribeMonitor = monitor.subscribe(() => {
    offloader.enforceHeadroom().catch((error) =>
      console.error("Restoring the headroom failed:", error)
    );
  });
  monitor.start();
  const services: Services = {
    config,
    monitor,
    catalog,
    manager: pipelines,
    offloader,
    events,
    store,
    streams: new StreamLimiter(config.maxStreams),
    startedAt: Date.now(),
    shutdown: shutdown.signal,
    counters,
    hostname: config.nodeName ?? hostName(),
  };
  const app = createApp(services);
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      shutdown.abort();
      unsubscribeMonitor();
      unsubscribeEvents();
      counters.close();
      pipelines.close();
      monitor.stop();
      store.close();
    }
    return Promise.resolve();
  };
  return {
    app,
    services,
    beginShutdown: () => shutdown.abort(),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The machine's host name (the default `Hostname` label on /metrics). */
function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** Headroom's allowance on a device of `totalBytes`: the budget in bytes or as a share, else the total. */
export function budgetBytes(config: Pick<Config, "vramBudget">, totalBytes: number): number {
  const budget = config.vramBudget;
  if (!budget) return totalBytes;
  if (budget.kind === "percent") return Math.floor((totalBytes * budget.percent) / 100);
  return totalBytes > 0 ? Math.min(budget.bytes, totalBytes) : budget.bytes;
}

/**
 * Device 0 as the offloader sees it: the monitor's latest sample, corrected for what our
 * own pipelines allocated or freed since it was taken (tracked bytes change at once; a
 * driver's figures only at the next sample).
 */
function deviceView(monitor: VramMonitor, trackedBytes: () => number): DeviceView {
  return {
    available: () => monitor.sourceKind !== "none",
    read: () => {
      const device = monitor.current().devices[0];
      if (!device || device.state === "lost") {
        return { freeBytes: 0, totalBytes: device?.totalBytes ?? 0 };
      }
      const ownChange = trackedBytes() - device.activeBytes;
      return {
        freeBytes: Math.max(0, device.freeBytes - ownChange),
        totalBytes: device.totalBytes,
      };
    },
  };
}

/** What is known of each model's footprint: file size, current tracked bytes, saved peak. */
function footprintOf(catalog: Catalog, manager: PipelineManager, store: ProfileStore) {
  const fileBytes = new Map<string, number>();
  return (id: string): ModelFootprint => {
    let size = fileBytes.get(id);
    if (size === undefined) {
      const model = catalog.find(id);
      size = model?.syntheticBytes ?? 0;
      if (model && model.syntheticBytes === null) {
        try {
          size = Deno.statSync(model.path).size;
        } catch {
          size = 0;
        }
      }
      fileBytes.set(id, size);
    }
    const live = manager.liveFigures(id);
    return {
      id,
      fileBytes: size,
      trackedBytes: live.onGpu ? Math.max(live.gpuBytes, live.gpuPeakBytes) : null,
      profileBytes: store.get(id, "gpu")?.gpuPeakBytes ?? null,
    };
  };
}

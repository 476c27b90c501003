/**
 * The running service, composed here and decided nowhere here: picks the VRAM source,
 * starts the monitor, reads the model catalog, opens the profile store, creates the worker
 * host (the PipelineManager) and the Scheduler that alone drives it (its policy, budget,
 * estimates and readings live in core/placement), builds the app. `main.ts` and the tests both start
 * Headroom through {@link startService}.
 * @module
 */
import { join } from "node:path";
import type { Hono } from "hono";
import { type Config, ConfigError, headroomProblem } from "../core/config.ts";
import { createApp } from "./app.ts";
import { routes } from "../routes/_manifest.ts";
import { EventLog } from "../core/events.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { type Catalog, loadCatalog } from "../core/models/catalog.ts";
import { chooseSource } from "../core/monitor/choose_source.ts";
import { VramMonitor } from "../core/monitor/vram_monitor.ts";
import { PipelineManager } from "../workers/manager.ts";
import { budgetBytes } from "../core/placement/budget.ts";
import { deviceView, processMeter } from "../core/placement/measure.ts";
import { Scheduler } from "../core/placement/scheduler.ts";
import { ProfileStore } from "../core/store/profiles.ts";
import { preparePageAssets } from "../runtime/server/bundle.ts";
import { StreamLimiter } from "./http/limits.ts";
import { chooseCpuEngine } from "../workers/engines/choose.ts";
import { scanOnnxFile } from "../core/models/external_data.ts";
import { EventCounters } from "./metrics/event_counters.ts";
import { ReportFeed } from "./report.ts";

/** A started service: its app, its parts, and how to stop it. */
export interface Service extends AsyncDisposable {
  app: Hono<AppEnv>;
  services: Services;
  /** The worker host, for tests that fake a crash (routes only see the scheduler). */
  host: PipelineManager;
  /** Tells long-lived streams (SSE, WebSockets) the service is stopping; they close at once. */
  beginShutdown(): void;
  close(): Promise<void>;
}

/** Starts every part of Headroom for `config` (nothing listens yet: serve `app.fetch`). */
export async function startService(config: Config): Promise<Service> {
  const catalog = await loadCatalog(config.modelsFile, config.dataDir);
  // Native when onnxruntime-node loads (probed once per process), else wasm; `native` that
  // cannot load stops the start with the reason.
  const cpuEngine = await chooseCpuEngine({
    mode: config.cpuEngine,
    ortNodeDir: config.ortNodeDir,
    threads: config.cpuThreads,
  });
  const modelBytes = await modelSizes(catalog);
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
  events.restore(await store.recentEvents(100).catch(() => []));
  const meter = processMeter(monitor);
  const shutdown = new AbortController();
  const counters = new EventCounters(events);
  manager = new PipelineManager({
    catalog,
    events,
    profiles: store,
    gpuAvailable: source.kind !== "none",
    cpuEngine,
    meter,
    // Every worker step (start, load, move, run, unload) has the request's deadline.
    stepTimeoutMs: config.requestTimeoutMs,
    pluginMemoryBytes: config.pluginMemoryBytes,
  });
  const host = manager;
  monitor.start();
  // The headroom is used as configured: at or above the budget nothing could ever be placed.
  const total = monitor.current().devices[0]?.totalBytes ?? 0;
  if (source.kind !== "none" && total > 0) {
    const budget = budgetBytes(config.vramBudget, total);
    if (config.headroomBytes >= budget) {
      monitor.stop();
      store.close();
      throw new ConfigError([
        headroomProblem(
          config.headroomBytes,
          budget,
          config.vramBudget ? "the VRAM budget" : "the device's total memory",
          config.givenAs?.headroomBytes,
        ),
      ]);
    }
  }
  const scheduler = new Scheduler({
    host,
    device: deviceView(monitor, host),
    events,
    budgetFor: (total) => budgetBytes(config.vramBudget, total),
    headroomBytes: config.headroomBytes,
    sizes: {
      fileBytes: (id) => modelBytes.get(id) ?? 0,
      measuredPeakBytes: (id) => store.get(id, "gpu")?.gpuPeakBytes ?? null,
    },
    onInsufficientVram: config.onInsufficientVram,
    mode: config.mode,
    queueLimit: config.queueLimit,
    requestTimeoutMs: config.requestTimeoutMs,
    maxWaitMs: config.maxWaitMs,
    defaultPriority: (id) => catalog.find(id)?.priority,
    keepAlive: (id) => {
      const model = catalog.find(id);
      return {
        ms: model?.keepAliveMs === undefined ? config.keepAliveMs : model.keepAliveMs,
        idleAction: model?.idleAction ?? config.idleAction,
      };
    },
    meter,
  });
  const unsubscribeEvents = events.subscribe((event) => {
    void store.appendEvent(event); // a failed write is counted in store.health(), not thrown
  });
  const unsubscribeMonitor = monitor.subscribe(() => {
    scheduler.enforceHeadroom().catch((error) =>
      console.error("Restoring the headroom failed:", error)
    );
  });
  const preload = catalog.list().filter((m) => m.preload).map((m) => m.id);
  if (preload.length > 0) {
    scheduler.preload(preload).catch((error) => console.error("Preloading failed:", error));
  }
  const services: Services = {
    config,
    monitor,
    catalog,
    scheduler,
    cpuEngine,
    events,
    store,
    streams: new StreamLimiter(config.maxStreams),
    startedAt: Date.now(),
    shutdown: shutdown.signal,
    counters,
    hostname: config.nodeName ?? hostName(),
    reports: new ReportFeed({ monitor, scheduler, events, cpuEngine, store }),
  };
  const app = createApp(services, routes);
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      shutdown.abort();
      unsubscribeMonitor();
      unsubscribeEvents();
      counters.close();
      scheduler.close();
      host.close();
      monitor.stop();
      store.close();
    }
    return Promise.resolve();
  };
  return {
    app,
    services,
    host,
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

/**
 * Each model's bytes for estimates: graph file + every external data file (synthetic
 * models: their weight size). A file that cannot be scanned counts its own size; loading
 * it reports why. A generated model already on disk is scanned like any other.
 */
async function modelSizes(catalog: Catalog): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const model of catalog.list()) {
    try {
      // A generated model already on disk counts as what it is (the row's modelBytes
      // after a restart), not as the size asked for.
      sizes.set(model.id, (await scanOnnxFile(model.path)).totalBytes);
    } catch {
      sizes.set(
        model.id,
        model.syntheticBytes ?? await Deno.stat(model.path).then((s) => s.size, () => 0),
      );
    }
  }
  return sizes;
}

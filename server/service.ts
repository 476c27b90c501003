/**
 * The running service: picks the VRAM source, starts the monitor, reads the model
 * catalog, opens the profile store, creates the worker host (the PipelineManager) and
 * the Scheduler that alone drives it, builds the app. `main.ts` and the tests both start
 * Headroom through {@link startService}.
 * @module
 */
import { join } from "node:path";
import type { Hono } from "hono";
import { type Config, ConfigError, headroomProblem } from "../core/config.ts";
import { createApp } from "./app.ts";
import { EventLog } from "../core/events.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { type Catalog, loadCatalog } from "../core/models/catalog.ts";
import { chooseSource } from "../core/monitor/choose_source.ts";
import { VramMonitor } from "../core/monitor/vram_monitor.ts";
import { PipelineManager } from "../workers/manager.ts";
import type { ModelFootprint } from "../core/placement/budget.ts";
import type { DeviceView, Meter } from "../core/placement/device.ts";
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
  const usesDriver = source.kind === "nvml" || source.kind === "cudart";
  const shutdown = new AbortController();
  const counters = new EventCounters(events);
  manager = new PipelineManager({
    catalog,
    events,
    profiles: store,
    gpuAvailable: source.kind !== "none",
    cpuEngine,
    deviceUsedBytes: usesDriver
      ? () => monitor.peek().devices.reduce((sum, d) => sum + d.usedBytes, 0)
      : undefined,
  });
  const host = manager;
  monitor.start();
  // The headroom is used as configured: at or above the budget nothing could ever be placed.
  const total = monitor.current().devices[0]?.totalBytes ?? 0;
  if (source.kind !== "none" && total > 0) {
    const budget = budgetBytes(config, total);
    if (config.headroomBytes >= budget) {
      monitor.stop();
      store.close();
      throw new ConfigError([
        headroomProblem(
          config.headroomBytes,
          budget,
          config.vramBudget ? "the VRAM budget" : "the device's total memory",
          config.givenAs?.headroom,
        ),
      ]);
    }
  }
  const meter: Meter = {
    rssBytes: () => Deno.memoryUsage().rss,
    settle: () => settleRss(),
    deviceUsedBytes: () =>
      usesDriver ? monitor.peek().devices.reduce((sum, d) => sum + d.usedBytes, 0) : null,
  };
  const scheduler = new Scheduler({
    host,
    device: deviceView(monitor, host),
    events,
    budgetFor: (total) => budgetBytes(config, total),
    headroomBytes: config.headroomBytes,
    footprint: footprintOf(modelBytes, host, store),
    onInsufficientVram: config.onInsufficientVram,
    mode: config.mode,
    queueLimit: config.queueLimit,
    requestTimeoutMs: config.requestTimeoutMs,
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
    reports: new ReportFeed({ monitor, scheduler, events, cpuEngine }),
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

/** Headroom's allowance on a device of `totalBytes`: the budget in bytes or as a share, else the total. */
export function budgetBytes(config: Pick<Config, "vramBudget">, totalBytes: number): number {
  const budget = config.vramBudget;
  if (!budget) return totalBytes;
  if (budget.kind === "percent") return Math.floor((totalBytes * budget.percent) / 100);
  return totalBytes > 0 ? Math.min(budget.bytes, totalBytes) : budget.bytes;
}

/**
 * Device 0 as the scheduler reads it: the monitor's latest sample, or a fresh driver read
 * (without touching the history) when a decision needs one. `trackedBytes` is what our
 * pipelines held when the figures were read, so the scheduler can correct an older sample.
 */
export function deviceView(
  monitor: VramMonitor,
  host: Pick<PipelineManager, "trackedBytes">,
): DeviceView {
  const confirmsReleases = monitor.sourceKind === "nvml" || monitor.sourceKind === "cudart";
  return {
    read: (fresh) => {
      const none = {
        state: "none" as const,
        freeBytes: 0,
        totalBytes: 0,
        trackedBytes: host.trackedBytes(),
        confirmsReleases: false,
        seq: monitor.queries,
      };
      if (monitor.sourceKind === "none") return none;
      const sample = fresh ? monitor.peek() : monitor.current();
      const device = sample.devices[0];
      if (!device) return none;
      return {
        state: device.state,
        freeBytes: device.freeBytes,
        totalBytes: device.totalBytes,
        trackedBytes: device.activeBytes,
        confirmsReleases,
        seq: monitor.seqOf(sample),
        error: device.error,
      };
    },
  };
}

/**
 * Each model's bytes for estimates: graph file + every external data file (synthetic
 * models: their weight size). A file that cannot be scanned counts its own size; loading
 * it reports why.
 */
async function modelSizes(catalog: Catalog): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const model of catalog.list()) {
    if (model.syntheticBytes !== null) {
      sizes.set(model.id, model.syntheticBytes);
      continue;
    }
    try {
      sizes.set(model.id, (await scanOnnxFile(model.path)).totalBytes);
    } catch {
      sizes.set(model.id, await Deno.stat(model.path).then((s) => s.size, () => 0));
    }
  }
  return sizes;
}

/** What is known of each model's footprint: file bytes, current tracked bytes, saved peak. */
function footprintOf(sizes: Map<string, number>, manager: PipelineManager, store: ProfileStore) {
  return (id: string): ModelFootprint => {
    const live = manager.liveFigures(id);
    return {
      id,
      fileBytes: sizes.get(id) ?? 0,
      trackedBytes: live.onGpu ? Math.max(live.gpuBytes, live.gpuPeakBytes) : null,
      profileBytes: store.get(id, "gpu")?.gpuPeakBytes ?? null,
    };
  };
}

/**
 * Waits until the process's RSS holds still (two readings 50 ms apart within 1 MiB), at
 * most 1 s: ended workers give their memory back a little after they end.
 */
async function settleRss(): Promise<void> {
  let last = Deno.memoryUsage().rss;
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = Deno.memoryUsage().rss;
    if (Math.abs(now - last) < 2 ** 20) return;
    last = now;
  }
}

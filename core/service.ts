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
import { chooseCpuEngine } from "../workers/engines/choose.ts";
import { scanOnnxFile } from "./models/external_data.ts";

/** A started service: its app, its parts, and how to stop it. */
export interface Service extends AsyncDisposable {
  app: Hono<AppEnv>;
  services: Services;
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
  manager = new PipelineManager({
    catalog,
    events,
    profiles: store,
    gpuAvailable: source.kind !== "none",
    cpuEngine,
    // The wasm fallback stays single-threaded: with threads, its shared wasm memory (the
    // whole model) outlived the terminated worker (+450 MB after a 256 MiB model's unload).
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
    footprint: footprintOf(modelBytes, pipelines, store),
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
  };
  const app = createApp(services);
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      unsubscribeMonitor();
      unsubscribeEvents();
      pipelines.close();
      monitor.stop();
      store.close();
    }
    return Promise.resolve();
  };
  return { app, services, close, [Symbol.asyncDispose]: close };
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

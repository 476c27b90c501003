/**
 * The running service: picks the VRAM source, starts the monitor, reads the model
 * catalog, creates the pipeline manager, builds the app. `main.ts` and the tests both
 * start Headroom through {@link startService}.
 * @module
 */
import type { Hono } from "hono";
import type { Config } from "./config.ts";
import { createApp } from "./app.ts";
import { EventLog } from "./events.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { loadCatalog } from "./models/catalog.ts";
import { chooseSource } from "./monitor/choose_source.ts";
import { VramMonitor } from "./monitor/vram_monitor.ts";
import { PipelineManager } from "./pipelines/manager.ts";

/** A started service: its app, its parts, and how to stop it. */
export interface Service extends AsyncDisposable {
  app: Hono<AppEnv>;
  services: Services;
  close(): Promise<void>;
}

/** Starts every part of Headroom for `config` (nothing listens yet: serve `app.fetch`). */
export async function startService(config: Config): Promise<Service> {
  const catalog = await loadCatalog(config.modelsFile, config.dataDir);
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
    gpuAvailable: source.kind !== "none",
    deviceUsedBytes: source.kind === "nvml" || source.kind === "cudart"
      ? () => monitor.sample().devices.reduce((sum, d) => sum + d.usedBytes, 0)
      : undefined,
  });
  monitor.start();
  const services: Services = { config, monitor, catalog, manager, events, startedAt: Date.now() };
  const app = createApp(services);
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      manager?.close();
      monitor.stop();
    }
    return Promise.resolve();
  };
  return { app, services, close, [Symbol.asyncDispose]: close };
}

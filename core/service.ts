/**
 * The running service: picks the VRAM source, starts the monitor, builds the app.
 * `main.ts` and the tests both start Headroom through {@link startService}.
 * @module
 */
import type { Hono } from "hono";
import type { Config } from "./config.ts";
import { createApp } from "./app.ts";
import type { AppEnv, Services } from "./http/context.ts";
import { chooseSource } from "./monitor/choose_source.ts";
import { VramMonitor } from "./monitor/vram_monitor.ts";

/** A started service: its app, its parts, and how to stop it. */
export interface Service extends AsyncDisposable {
  app: Hono<AppEnv>;
  services: Services;
  close(): Promise<void>;
}

/** Starts every part of Headroom for `config` (nothing listens yet: serve `app.fetch`). */
export async function startService(config: Config): Promise<Service> {
  let trackedBytes = () => 0;
  const { source, reason } = await chooseSource(config, () => trackedBytes());
  const monitor = new VramMonitor({
    source,
    reason,
    sampleMs: config.sampleMs,
    historyMs: config.historyMs,
  });
  monitor.start();
  trackedBytes = () => 0;
  const services: Services = { config, monitor, startedAt: Date.now() };
  const app = createApp(services);
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      monitor.stop();
    }
    return Promise.resolve();
  };
  return { app, services, close, [Symbol.asyncDispose]: close };
}

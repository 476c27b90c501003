/**
 * Headroom inside this process, for the tools, the tests and the benchmarks: one call
 * builds the configuration (flags as `deno task start` reads them, then typed
 * overrides such as a driver double's `nvmlLibrary` or `gpu: "software"` with a byte
 * budget), gives the service a private temp data dir and, when asked, a models file,
 * starts it, and ({@link serveHeadroom}) listens on a free loopback port. `close()` (or
 * `await using`) undoes all of it, the temp dir included.
 *
 * `main.ts` does not use it: it serves the configured host and port and shuts down on
 * signals with a deadline.
 *
 * @example
 * ```ts ignore
 * await using headroom = await serveHeadroom({
 *   args: ["--gpu", "cpu"],
 *   models: [{ id: "tiny", source: "synthetic:64KiB" }],
 * });
 * const vram = await (await fetch(`${headroom.url}/api/v1/hardware/vram`)).json();
 * ```
 * @module
 */
import { join } from "node:path";
import { type Config, parseConfig } from "../core/config.ts";
import type { Services } from "./http/context.ts";
import { type Service, startService } from "./service.ts";

/** What to start: every field is optional; nothing of the caller's environment is read unless `env` is given. */
export interface HeadroomOptions {
  /** Flags as `deno task start` takes them, e.g. `["--gpu", "cpu", "--vram-budget", "90%"]`. */
  args?: readonly string[];
  /** Where `HEADROOM_*` variables are read from (default: none, so the caller's cannot leak in). */
  env?: { get(name: string): string | undefined };
  /** Settings applied over the parsed flags (the test doubles' `nvmlLibrary`, a `vramBudget`…). */
  config?: Partial<Config>;
  /** Catalog entries (`{id, source, …}`) written to a models file in the temp dir and used as the catalog. */
  models?: readonly unknown[];
  /**
   * Give the service a temp data dir unless the flags, the environment or `config` name
   * one (default true). `false` keeps the configured one (`./data` by default), as
   * `deno task load` does so that its measurements are saved.
   */
  tempDataDir?: boolean;
  /** Prefix of the temp dir's name (default `headroom-`), so a leftover says who made it. */
  tempPrefix?: string;
}

/** A fetch handler, as `Deno.serve` takes one. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** What {@link serveHeadroom} adds: where it listens. */
export interface ServeOptions extends HeadroomOptions {
  /** Address to listen on (default 127.0.0.1; the configured host and port are not used). */
  hostname?: string;
  /** Port to listen on (default 0: a free one). */
  port?: number;
  /** Wraps the app's fetch handler (the browser tests cut live streams through it). */
  wrapFetch?: (fetch: FetchHandler) => FetchHandler;
}

/** A started in-process Headroom: its parts, and one `close()` for all of it (safe to call twice). */
export interface Headroom extends AsyncDisposable {
  service: Service;
  services: Services;
  app: Service["app"];
  config: Config;
  /** The temp dir made for this service (data, models file), removed on close; null when none was needed. */
  tempDir: string | null;
  /** `app.request` shorthand: a request through the app without a socket. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** POSTs `body` as JSON through the app; answers the parsed JSON, throws naming the status otherwise. */
  post<T = unknown>(path: string, body?: unknown): Promise<T>;
  close(): Promise<void>;
}

/** A Headroom listening on a port. */
export interface ServedHeadroom extends Headroom {
  /** Its origin, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  server: Deno.HttpServer<Deno.NetAddr>;
}

/**
 * The configuration {@link startHeadroom} starts with: `args` (and `env`) parsed as the
 * server parses them, port 0, then `config`; `dataDir`/`modelsFile` filled in by the caller.
 * Throws ConfigError (naming each bad flag) like the server.
 */
export function headroomConfig(options: Pick<HeadroomOptions, "args" | "env" | "config"> = {}): {
  config: Config;
  /** Whether the flags, the environment or the overrides chose the data dir. */
  dataDirGiven: boolean;
} {
  const parsed = parseConfig([...(options.args ?? [])], options.env ?? new Map<string, string>());
  if (parsed.help) throw new Error("headroomConfig: --help is not a setting");
  const config: Config = { ...parsed.config, port: 0, ...options.config };
  const dataDirGiven = options.config?.dataDir !== undefined ||
    parsed.config.givenAs?.dataDir !== undefined;
  return { config, dataDirGiven };
}

/** Starts Headroom in this process without listening (requests go through `request` or `app`). */
export async function startHeadroom(options: HeadroomOptions = {}): Promise<Headroom> {
  const { config, dataDirGiven } = headroomConfig(options);
  const needsData = !dataDirGiven && (options.tempDataDir ?? true);
  const tempDir = needsData || options.models
    ? await Deno.makeTempDir({ prefix: options.tempPrefix ?? "headroom-" })
    : null;
  const removeTemp = () => {
    if (tempDir === null) return;
    try {
      Deno.removeSync(tempDir, { recursive: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  let service: Service;
  try {
    if (tempDir !== null && needsData) config.dataDir = join(tempDir, "data");
    if (tempDir !== null && options.models) {
      config.modelsFile = join(tempDir, "models.json");
      await Deno.writeTextFile(
        config.modelsFile,
        JSON.stringify({ models: options.models }, null, 2),
      );
    }
    service = await startService(config);
  } catch (error) {
    removeTemp();
    throw error;
  }
  let closed = false;
  // Synchronous up to the returned promise: a benchmark's `unload` listener can call it.
  const close = () => {
    if (closed) return Promise.resolve();
    closed = true;
    const closing = service.close();
    try {
      removeTemp();
    } catch (error) {
      return closing.then(() => Promise.reject(error));
    }
    return closing;
  };
  return {
    service,
    services: service.services,
    app: service.app,
    config,
    tempDir,
    request: (path, init) => Promise.resolve(service.app.request(path, init)),
    post: async <T = unknown>(path: string, body?: unknown): Promise<T> => {
      const response = await service.app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = await response.json();
      if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(json)}`);
      return json as T;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Starts Headroom in this process and serves it on a free loopback port: what the
 * stress tool, the browser tests and the dashboard benchmark run against. `close()`
 * ends live streams, waits for the server to drain, stops the service and removes the
 * temp dir.
 */
export async function serveHeadroom(options: ServeOptions = {}): Promise<ServedHeadroom> {
  const headroom = await startHeadroom(options);
  const fetch: FetchHandler = options.wrapFetch?.(headroom.app.fetch) ?? headroom.app.fetch;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
      onListen: () => {},
    }, fetch);
  } catch (error) {
    await headroom.close();
    throw error;
  }
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      // Live streams would hold the drain open: end them first, as main.ts does.
      headroom.service.beginShutdown();
      await server.shutdown();
      await headroom.close();
    })();
    return closing;
  };
  const host = server.addr.hostname.includes(":")
    ? `[${server.addr.hostname}]`
    : server.addr.hostname;
  return {
    ...headroom,
    url: `http://${host}:${server.addr.port}`,
    server,
    close,
    [Symbol.asyncDispose]: close,
  };
}

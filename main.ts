/**
 * Headroom's entry point. Edge-style: it builds the app once and exports `{ fetch }`
 * (the shape `deno serve` takes); run directly (`deno task start`), it also serves it
 * on the configured host and port.
 * @module
 */
import { CONFIG_HELP, ConfigError, isLoopback, parseConfig } from "./core/config.ts";
import { startService } from "./core/service.ts";
import { CatalogError } from "./core/models/catalog.ts";
import { CpuEngineError } from "./workers/engines/choose.ts";

function readConfig() {
  try {
    const result = parseConfig(Deno.args, Deno.env);
    if (result.help) {
      console.log(CONFIG_HELP);
      Deno.exit(0);
    }
    return result.config;
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      Deno.exit(2);
    }
    throw error;
  }
}

/** How long in-flight requests may run after SIGINT/SIGTERM before the service stops anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

const config = readConfig();
const service = await startService(config).catch((error) => {
  if (
    error instanceof CatalogError || error instanceof ConfigError || error instanceof CpuEngineError
  ) {
    console.error(error.message);
    Deno.exit(2);
  }
  throw error;
});

/** The app's fetch handler, for `deno serve` and edge runtimes. */
const handler: Deno.ServeDefaultExport = { fetch: service.app.fetch };
export default handler;

if (import.meta.main) {
  if (!isLoopback(config.host) && !config.token) {
    console.warn(
      `WARNING: serving ${config.host} with NO API token (--insecure-no-token): anyone who can ` +
        `reach this port can load, evict and unload models. Set HEADROOM_TOKEN.`,
    );
  }
  const { monitor } = service.services;
  console.log(
    `Headroom: VRAM source ${monitor.sourceKind}` + (monitor.reason ? ` (${monitor.reason})` : ""),
  );
  const engine = service.services.cpuEngine;
  if (engine) console.log(`Headroom: CPU engine ${engine.engine} (${engine.reason})`);
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: ({ hostname, port }) =>
      console.log(`Headroom listening on http://${hostname}:${port}`),
  }, service.app.fetch);
  let stopping = false;
  const stop = async () => {
    if (stopping) {
      console.error("Headroom: second signal, exiting now");
      Deno.exit(130);
    }
    stopping = true;
    console.log(
      `Headroom: shutting down: no new connections, in-flight requests get ${
        SHUTDOWN_DEADLINE_MS / 1000
      } s ` +
        `(a second signal exits at once)`,
    );
    const deadline = new Promise<"deadline">((resolve) =>
      setTimeout(() => resolve("deadline"), SHUTDOWN_DEADLINE_MS)
    );
    const finished = await Promise.race([
      server.shutdown().then(() => "drained" as const),
      deadline,
    ]);
    if (finished === "deadline") {
      console.warn("Headroom: in-flight requests did not finish in time; stopping them");
    }
    await service.close(); // ends every worker (sessions released), closes KV
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

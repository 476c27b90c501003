/**
 * Headroom as a fetch handler: reads the configuration (flags and `HEADROOM_*`
 * variables), starts the service once, and exports `{ fetch }`, the shape `deno serve
 * serve.ts` and edge runtimes take. `main.ts` imports it and listens itself: a main
 * module that exported `{ fetch }` would make every `deno run` print Deno's
 * 'did you mean to run "deno serve"?' warning.
 * @module
 */
import { type Config, CONFIG_HELP, ConfigError, parseConfig } from "./core/config.ts";
import { type Service, startService } from "./server/service.ts";
import { CatalogError } from "./core/models/catalog.ts";
import { CpuEngineError } from "./workers/engines/choose.ts";
import { StorageError } from "./core/store/storage_error.ts";

function readConfig(): Config {
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

/** The validated configuration this process runs with. */
export const config: Config = readConfig();

/** The started service (monitor, pipelines, app). */
export const service: Service = await startService(config).catch((error) => {
  // A bad models file, a headroom at or above the budget, a `native` CPU engine that
  // cannot load, a corrupt or locked KV file: one message, exit 2, like a bad flag.
  if (
    error instanceof CatalogError || error instanceof ConfigError ||
    error instanceof CpuEngineError || error instanceof StorageError
  ) {
    console.error(error.message);
    Deno.exit(2);
  }
  throw error;
});

/** The app's fetch handler, for `deno serve serve.ts` and edge runtimes. */
const handler: Deno.ServeDefaultExport = { fetch: service.app.fetch };
export default handler;

/**
 * Headroom's entry point (`deno task start`): starts the service (serve.ts, which also
 * exports `{ fetch }` for `deno serve`) and serves it on the configured host and port.
 * A port in use is one line naming it and the flag to change it (exit 1). SIGINT/SIGTERM
 * close live streams at once (pages show "server stopped"), let in-flight requests
 * finish (10 s at most), end every worker and close KV; a second signal exits at once.
 * @module
 */
import { isLoopback } from "./core/config.ts";
import { config, service } from "./serve.ts";
import { raiseFileLimit } from "./ffi/libc.ts";
import { connectionCapFor, type GuardedServer, serveGuarded } from "./server/connection_guard.ts";

/** How long in-flight requests may run after SIGINT/SIGTERM before the service stops anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

if (!isLoopback(config.host) && !config.token) {
  console.warn(
    `WARNING: serving ${config.host} with NO API token (--insecure-no-token): anyone who can ` +
      `reach this port can load, evict and unload models. Set HEADROOM_TOKEN.`,
  );
}
const { monitor } = service.services;

// Connections are bounded below the descriptor limit (raised to the hard limit first):
// Deno.serve alone has no header or idle timeout and exited on EMFILE (server/connection_guard.ts).
const fileLimit = raiseFileLimit();
const maxConnections = config.maxConnections ?? connectionCapFor(fileLimit?.soft ?? 1024);
let server: GuardedServer;
try {
  server = await serveGuarded({
    hostname: config.host,
    port: config.port,
    limits: {
      maxConnections,
      headerTimeoutMs: config.headerTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
    },
  }, service.app.fetch);
  const { hostname, port } = server.addr;
  console.log(
    `Headroom: VRAM source ${monitor.sourceKind}` +
      (monitor.reason ? ` (${monitor.reason})` : ""),
  );
  const engine = service.services.cpuEngine;
  if (engine) console.log(`Headroom: CPU engine ${engine.engine} (${engine.reason})`);
  console.log(
    `Headroom: at most ${maxConnections} connections (descriptor limit ${
      fileLimit?.soft ?? "unknown"
    })`,
  );
  console.log(`Headroom listening on http://${hostname}:${port}`);
} catch (error) {
  await service.close();
  if (error instanceof Deno.errors.AddrInUse) {
    console.error(
      `Headroom: port ${config.port} on ${config.host} is already in use (another Headroom?); ` +
        `stop it, or pick another port with --port N (or HEADROOM_PORT)`,
    );
    Deno.exit(1);
  }
  if (
    error instanceof Deno.errors.AddrNotAvailable || error instanceof Deno.errors.PermissionDenied
  ) {
    console.error(
      `Headroom: cannot listen on ${config.host}:${config.port} (${(error as Error).message}); ` +
        `check --host and --port (or HEADROOM_HOST, HEADROOM_PORT)`,
    );
    Deno.exit(1);
  }
  throw error;
}

let stopping = false;
const stop = async () => {
  if (stopping) {
    console.error("Headroom: second signal, exiting now");
    Deno.exit(130);
  }
  stopping = true;
  console.log(
    `Headroom: shutting down: live streams closed, in-flight requests get ${
      SHUTDOWN_DEADLINE_MS / 1000
    } s (a second signal exits at once)`,
  );
  // SSE and WebSocket streams would hold the drain open until the deadline: end them first.
  service.beginShutdown();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"deadline">((resolve) => {
    timer = setTimeout(() => resolve("deadline"), SHUTDOWN_DEADLINE_MS);
  });
  const finished = await Promise.race([
    server.shutdown().then(() => "drained" as const),
    deadline,
  ]);
  clearTimeout(timer);
  if (finished === "deadline") {
    console.warn("Headroom: in-flight requests did not finish in time; stopping them");
  }
  await service.close(); // ends every worker (sessions released), closes KV
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

/**
 * A server in a subprocess, ready once it prints its URL: what the HTTP benchmarks run
 * wrk against and what the pressure tests point the tool at. Its stdout is drained and
 * its stderr kept (for the error when it exits before listening), so a chatty server
 * never blocks on a full pipe.
 * @module
 */

/**
 * The `--v8-flags=…` argument the service runs with: the one `deno task start` gives it
 * (deno.json is its one declaration), so a bench starts the service as a user does.
 */
export const SERVICE_V8_FLAGS: string = (() => {
  // Read, not imported: the layer rules keep scripts/ from importing the project's config.
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  const flags = /--v8-flags=\S+/.exec(config.tasks.start)?.[0];
  if (!flags) {
    throw new Error("deno.json's start task names no --v8-flags: the benches need its flags");
  }
  return flags;
})();

/** A server started in a subprocess. */
export interface ServerProcess extends AsyncDisposable {
  /** Its origin as it printed it, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Its process id (for its CPU time in /proc). */
  pid: number;
  /** Ends it (SIGTERM by default: Headroom shuts down cleanly) and waits for the exit. */
  stop(): Promise<void>;
}

/** How to start it. */
export interface ServerProcessOptions {
  /** Deno's arguments (`run … main.ts --port 0`, or `eval …`). */
  args: string[];
  /** Its working directory (where Deno finds deno.json; default this process's). */
  cwd?: string;
  /** Variables added to this process's environment. */
  env?: Record<string, string>;
  /** The signal {@link ServerProcess.stop} sends (default SIGTERM). */
  stopSignal?: Deno.Signal;
  /** How long it may take to print its URL (default 30 s). */
  timeoutMs?: number;
}

/** Starts `deno <args>` and answers once it prints an `http://host:port` URL. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: options.args,
    cwd: options.cwd,
    env: options.env ?? {},
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
  let seen = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
      const match = /http:\/\/[\d.]+:\d+/.exec(seen);
      if (!match) continue;
      // Keep draining stdout so the child never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      let stopping: Promise<void> | null = null;
      const stop = () =>
        stopping ??= (async () => {
          try {
            child.kill(options.stopSignal ?? "SIGTERM");
          } catch { /* already gone */ }
          await child.status;
          await stderr;
        })();
      return { url: match[0], pid: child.pid, stop, [Symbol.asyncDispose]: stop };
    }
  } finally {
    clearTimeout(timer);
  }
  await child.status;
  throw new Error(`the server exited before listening: ${seen}${await stderr}`);
}

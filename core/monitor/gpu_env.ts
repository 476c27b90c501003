/**
 * The process environment Mesa's software WebGPU adapter (llvmpipe / lavapipe) wants.
 * Mesa probes for a Wayland/X11 display on every adapter request and, when
 * `XDG_RUNTIME_DIR` is unset, prints `error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment.` on stderr — harmless (the headless adapter works without a display), but
 * one such line per worker buried real failures in CI logs. Giving the process a private
 * runtime directory (mode 0700, as the XDG spec asks) silences it.
 * @module
 */

let prepared = false;

/**
 * Points `XDG_RUNTIME_DIR` at a private temp directory when it is unset or not a
 * directory, once per process, before the first WebGPU adapter request. Workers share
 * the process environment, so the main thread calls this before it spawns them. Without
 * env or write permission it does nothing (the line stays, nothing breaks).
 */
export function prepareGpuEnvironment(): void {
  if (prepared) return;
  prepared = true;
  try {
    const current = Deno.env.get("XDG_RUNTIME_DIR");
    if (current && Deno.statSync(current).isDirectory) return;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return;
    // A stale path: replace it below.
  }
  try {
    const dir = Deno.makeTempDirSync({ prefix: "headroom-xdg-" });
    Deno.chmodSync(dir, 0o700);
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
  } catch { /* no permission: Mesa prints its line, nothing else changes */ }
}

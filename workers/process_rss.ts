/**
 * The resident memory of a process by pid, from Linux's /proc: one read of
 * `/proc/PID/statm` (a few microseconds), cheap enough for a watch on an interval. The
 * plugin host's memory cap and the model row's `pluginRssBytes` both read it here.
 * @module
 */

/** Bytes of a page in /proc/PID/statm's counts (x86-64 and arm64 Linux). */
const PAGE_BYTES = 4096;

/** The resident memory of process `pid` in bytes, or null without one, once it is gone, or off Linux. */
export function processRssBytes(pid: number | null | undefined): number | null {
  if (!pid) return null;
  try {
    const pages = Number(Deno.readTextFileSync(`/proc/${pid}/statm`).split(" ")[1]);
    return Number.isFinite(pages) ? pages * PAGE_BYTES : null;
  } catch {
    return null;
  }
}

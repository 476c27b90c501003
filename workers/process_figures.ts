/**
 * A process's figures by pid, from Linux's /proc: its resident memory (one read of
 * `/proc/PID/statm`, a few microseconds, cheap enough for a watch on an interval: the
 * plugin host's memory cap and the model row's `pluginRssBytes` read it here) and the CPU
 * time all its threads have used (`/proc/PID/stat`: what the serving bench counts per
 * request, and the engine's idle test per run).
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

/** Clock ticks a second in /proc/PID/stat (Linux's USER_HZ, 100 on every build we run). */
const TICKS_PER_SECOND = 100;

/**
 * User + system CPU time of process `pid` ("self": this one), all threads, in ms (10 ms
 * steps), or null once it is gone or off Linux.
 */
export function processCpuMs(pid: number | "self"): number | null {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // utime and stime are fields 14 and 15; the command name (field 2) may hold spaces.
    const fields = text.slice(text.lastIndexOf(") ") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 1000 / TICKS_PER_SECOND : null;
  } catch {
    return null;
  }
}

/** Describes the machine a benchmark ran on, for the results file and docs/benchmarks.md. */

/** "2 cores, 24 GiB, Linux 6.1 x86_64, deno 2.9.6". */
export async function machineDescription(): Promise<string> {
  const cores = navigator.hardwareConcurrency;
  const memGiB = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
  let cpu = "";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.+)/.exec(info)?.[1]?.trim() ?? "";
  } catch {
    // not Linux: leave the model out
  }
  return `${cores} cores${
    cpu ? ` (${cpu})` : ""
  }, ${memGiB} GiB, ${Deno.build.os} ${Deno.build.arch}, deno ${Deno.version.deno}`;
}

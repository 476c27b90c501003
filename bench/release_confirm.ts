/**
 * Time from an offload to "release confirmed" on the NVIDIA driver double: the scheduler
 * over the real PipelineManager (worker doubles of 64 MiB), reading the double through
 * NVML, the real monitor and the service's device view; the double shows freed memory at
 * once, or 40 ms late (as a driver may). Each cycle loads the model on the GPU, then
 * times `scheduler.offload()`, which answers once the driver shows the bytes back. The
 * scheduler checks the driver every 20 ms (its default), so that is the resolution.
 * Run by `deno task bench`; writes bench/release_confirm.json. `--cycles N` (default 15).
 * @module
 */
import { parseArgs } from "node:util";
import { MiB } from "../tests/_sim_gpu.ts";
import { onDriverDouble } from "../tests/_driver_double.ts";
import { systemClock } from "../core/clock.ts";

/** What one run measured. */
export interface ReleaseConfirmBench {
  cycles: number;
  pollMs: number;
  results: Array<{ freeDelayMs: number; medianMs: number; p95Ms: number; confirmed: number }>;
}

const { values } = parseArgs({ args: Deno.args, options: { cycles: { type: "string" } } });
const cycles = Number(values.cycles ?? 15);

const results: ReleaseConfirmBench["results"] = [];
for (const freeDelayMs of [0, 40]) {
  const t = onDriverDouble([{ id: "m", gpuBytes: 64 * MiB }], freeDelayMs, {
    releasePollMs: 20,
    clock: systemClock, // real waits: the driver double's own fake clock would never move
  });
  const times: number[] = [];
  let confirmed = 0;
  try {
    for (let i = 0; i < cycles; i++) {
      await t.scheduler.load("m", "gpu");
      const started = performance.now();
      const { release } = await t.scheduler.offload("m");
      times.push(performance.now() - started);
      if (release.confirmed) confirmed++;
    }
  } finally {
    t.close();
  }
  times.sort((a, b) => a - b);
  results.push({
    freeDelayMs,
    medianMs: times[Math.floor(times.length / 2)],
    p95Ms: times[Math.min(times.length - 1, Math.floor(times.length * 0.95))],
    confirmed,
  });
}
const report: ReleaseConfirmBench = { cycles, pollMs: 20, results };
await Deno.writeTextFile(
  new URL("./release_confirm.json", import.meta.url),
  JSON.stringify(report, null, 2) + "\n",
);
console.log(JSON.stringify(report));

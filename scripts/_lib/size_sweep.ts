/**
 * The model size sweep of `deno task bench`: generated external-data models of 16 MiB,
 * 256 MiB and 1 GiB (3 GiB with `--heavy`), each through bench/big_model.ts in a fresh
 * process per CPU engine (native, wasm), with the GPU legs on the software WebGPU adapter,
 * turned into rows: cold load (s and GB/s), RSS ÷ weights, first and steady run, offload,
 * rehydrate, rehydrate ÷ cold load, and the native-over-wasm run ratio.
 * @module
 */
import type { BigModelRun, StepFigures } from "../../bench/big_model.ts";
import type { EngineRatio } from "../../bench/engine_ratio.ts";

/** One row of bench/results.json. */
export interface SweepRow {
  name: string;
  value: number;
  unit: string;
  target?: string;
  note: string;
}

const V8_FLAGS = "--v8-flags=--wasm-tiering-budget=100000000";

/** The 1-minute load average, to show when other processes shared the cores. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "?";
  }
}

async function runOne(root: string, size: string, engine: string): Promise<BigModelRun | string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      V8_FLAGS,
      "--allow-all",
      "bench/big_model.ts",
      "--size",
      size,
      "--cpu-engine",
      engine,
      "--gpu",
      "--cold-gpu",
      "--runs",
      "3",
      "--batch",
      "64",
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n");
    return stderr.filter((l) => !l.includes("XDG_RUNTIME_DIR")).slice(-3).join(" ");
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function steps(run: BigModelRun, name: string): StepFigures[] {
  return run.steps.filter((s) => s.step === name);
}

function one(run: BigModelRun, name: string): StepFigures | undefined {
  return steps(run, name)[0];
}

/** Rows of one run (one size, one CPU engine). */
function rowsOf(run: BigModelRun, engine: string, loadAvg: string): SweepRow[] {
  const rows: SweepRow[] = [];
  const w = run.weightBytes;
  const at = `${run.size}, ${engine}`;
  const load = one(run, "load:cpu")!;
  const first = one(run, "run:cpu:first")!;
  const steady = median(steps(run, "run:cpu").map((s) => s.ms));
  const peak = Math.max(load.peakRssBytes, first.peakRssBytes) - run.baselineRssBytes;
  const how = `bench/big_model.ts, generated external-data model (${run.fileBytes} B on disk, ` +
    `warm page cache), ${engine} CPU engine; load average ${loadAvg} after the run`;
  rows.push(
    {
      name: `size sweep - ${at}: cold load`,
      value: load.ms / 1000,
      unit: "s",
      note: `${how}; POST load {device: cpu}, fresh worker` +
        (engine === "native" ? "; the engine maps the weights, the first run pages them in" : ""),
    },
    {
      name: `size sweep - ${at}: cold load rate`,
      value: w / 1e9 / (load.ms / 1000),
      unit: "GB/s",
      target: engine === "native" ? "≥ 1" : undefined,
      note: `weights ÷ cold load; load + first run: ${
        (w / 1e9 / ((load.ms + first.ms) / 1000)).toFixed(2)
      } GB/s`,
    },
    {
      name: `size sweep - ${at}: RSS ÷ weights`,
      value: peak / w,
      unit: "ratio",
      target: engine === "native" ? "≤ 1.3" : undefined,
      note: "process peak RSS (VmHWM) over the load and first run, minus the baseline",
    },
    { name: `size sweep - ${at}: first run`, value: first.ms, unit: "ms", note: "1 × width" },
    {
      name: `size sweep - ${at}: steady run`,
      value: steady,
      unit: "ms",
      note:
        `median of ${steps(run, "run:cpu").length} runs, batch 1 (bound by memory bandwidth); ` +
        `load average ${loadAvg}`,
    },
    {
      name: `size sweep - ${at}: steady run, batch 64`,
      value: median(steps(run, "run:cpu:batch64").map((s) => s.ms)),
      unit: "ms",
      note: `median of ${
        steps(run, "run:cpu:batch64").length
      } runs after a warm-up (compute-bound); load average ${loadAvg}`,
    },
  );
  const offload = one(run, "offload");
  const rehydrate = one(run, "rehydrate");
  const coldGpu = one(run, "load:gpu:cold");
  if (run.gpu && offload && rehydrate && coldGpu) {
    const gpuHow = "software WebGPU adapter (llvmpipe/lavapipe): GPU buffers are host memory";
    rows.push(
      {
        name: `size sweep - ${at}: offload (GPU → CPU)`,
        value: offload.ms,
        unit: "ms",
        note: `${gpuHow}; the first offload also runs the deferred parity check`,
      },
      {
        name: `size sweep - ${at}: rehydrate (CPU → GPU)`,
        value: rehydrate.ms,
        unit: "ms",
        note: `${gpuHow}; peak RSS ${
          ((rehydrate.peakRssBytes - run.baselineRssBytes) / w).toFixed(2)
        }x weights over the baseline, GPU copy included`,
      },
      {
        name: `size sweep - ${at}: rehydrate ÷ cold GPU load`,
        value: rehydrate.ms / coldGpu.ms,
        unit: "ratio",
        note: `cold GPU load ${
          coldGpu.ms.toFixed(0)
        } ms (fresh worker, webgpu build import included)`,
      },
    );
    if (engine === "native") {
      const gpuSteady = median(steps(run, "run:gpu").map((s) => s.ms));
      rows.push({
        name: `size sweep - ${run.size}, webgpu (software adapter): steady run`,
        value: gpuSteady,
        unit: "ms",
        note: `median of ${steps(run, "run:gpu").length}; first run ${
          one(run, "run:gpu:first")!.ms.toFixed(0)
        } ms; tracked GPU bytes ${one(run, "load:gpu")!.gpuBytes}`,
      });
    }
  }
  return rows;
}

/** Runs the sweep; logs progress with `log`. */
export async function sizeSweepRows(
  root: string,
  heavy: boolean,
  log: (line: string) => void,
): Promise<SweepRow[]> {
  const sizes = ["16MiB", "256MiB", "1GiB", ...(heavy ? ["3GiB"] : [])];
  const rows: SweepRow[] = [];
  for (const size of sizes) {
    for (const engine of ["native", "wasm"]) {
      if (size === "3GiB" && engine === "wasm") {
        rows.push({
          name: `size sweep - 3GiB, wasm: refused`,
          value: 422,
          unit: "status",
          note: "above the wasm engine's 1.5 GiB limit: a 422 naming the limit and the fix",
        });
        continue;
      }
      log(`[size sweep] ${size} on ${engine} (and the software GPU)`);
      const run = await runOne(root, size, engine);
      const loadAvg = loadAverage();
      if (typeof run === "string") {
        rows.push({
          name: `size sweep - ${size}, ${engine}: failed`,
          value: 0,
          unit: "",
          note: run,
        });
        continue;
      }
      rows.push(...rowsOf(run, engine, loadAvg));
    }
  }
  // The ratio comes from one process, runs interleaved: other load weighs on both alike.
  log("[size sweep] native vs wasm on one 1 GiB model, runs interleaved");
  const ratio = await new Deno.Command(Deno.execPath(), {
    args: ["run", V8_FLAGS, "--allow-all", "bench/engine_ratio.ts", "--size", "1GiB"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  if (ratio.success) {
    const r = JSON.parse(new TextDecoder().decode(ratio.stdout)) as EngineRatio;
    const how = `bench/engine_ratio.ts: two workers on one 1 GiB model, ${r.rounds} interleaved ` +
      `rounds, medians; native ${r.threads} threads, wasm 1; load average ${loadAverage()}`;
    rows.push(
      {
        name: `size sweep - 1GiB: wasm ÷ native steady run, batch ${r.batch}`,
        value: r.wasm.bN / r.native.bN,
        unit: "ratio",
        target: "≥ 2",
        note: `${how}; ${r.native.bN.toFixed(0)} vs ${r.wasm.bN.toFixed(0)} ms (compute-bound)`,
      },
      {
        name: "size sweep - 1GiB: wasm ÷ native steady run, batch 1",
        value: r.wasm.b1 / r.native.b1,
        unit: "ratio",
        target: "≥ 2",
        note: `${how}; ${r.native.b1.toFixed(0)} vs ${r.wasm.b1.toFixed(0)} ms (bound by memory ` +
          "bandwidth: both read every weight once per run)",
      },
    );
  }
  return rows;
}

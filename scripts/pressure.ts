/**
 * `deno task pressure --gib N`: plays another tenant on the GPU. Allocates N GiB with
 * cudaMalloc (ffi/cudart.ts) in steps, holds it, and frees it all on Ctrl-C, SIGTERM or
 * when `--hold` seconds are up, so a person can watch Headroom evict and recover.
 *
 * Past the device's free memory cudaMalloc answers cudaErrorMemoryAllocation: the tool
 * then tries smaller pieces (down to 64 MiB), reports the error, and holds what it got.
 * With `--url` it also shows the service's view before, while holding and after, and
 * the events (evictions, OOM retries, transitions) that happened meanwhile.
 *
 * Works against the driver test double:
 * `HEADROOM_CUDART_LIBRARY=tests/.build/libfakegpu.so FAKE_GPU_STATE=/tmp/x deno task pressure --gib 2 --hold 1`
 *
 * Exit status: 0 when it ran (also when it got less than asked: see `allocationError`),
 * 1 when CUDA cannot be used or the service at `--url` does not answer, 2 for a bad flag.
 * @module
 */
import { CUDA_ERROR, CudaError, type Cudart, openCudart } from "../ffi/cudart.ts";
import type { HeadroomEvent, VramReport } from "../core/types.ts";
import { formatBytes } from "../core/units.ts";
import { formatTable, gib, sleep, UsageError } from "./_lib/cli.ts";
import { defineTool, flag } from "./_lib/tool.ts";
import { getVram } from "../api_client/mod.ts";
import { EventCollector } from "./_lib/event_collector.ts";

const TOOL = "pressure";
const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** Smallest piece tried after an allocation failure. */
const MIN_CHUNK = 64 * MiB;

const tool = defineTool({
  name: TOOL,
  usage: "deno task pressure --gib N [--hold S] [--step-gib X] [--device I] [--url URL] [--json]",
  about: `Allocates N GiB of VRAM with cudaMalloc to play another tenant, holds it, then frees it
all (on Ctrl-C, SIGTERM, or when the hold ends). Past the device's free memory it
reports cudaErrorMemoryAllocation and holds what it got.`,
  flags: {
    gib: {
      arg: "N",
      help: "GiB to allocate (required, > 0; fractions allowed)",
      schema: flag.requiredNumber("how many GiB to hold", { above: 0 }),
    },
    hold: {
      arg: "S",
      help: "seconds to hold it (default: until Ctrl-C / SIGTERM)",
      schema: flag.number(Infinity, { min: 0 }),
    },
    "step-gib": {
      arg: "X",
      help: "allocation step in GiB (default 1)",
      schema: flag.number(1, { min: 1 / 1024 }),
    },
    device: {
      arg: "I",
      help: "CUDA device index (default 0)",
      schema: flag.number(0, { min: 0, max: 63, integer: true }),
    },
    "cudart-library": {
      arg: "P",
      help: "libcudart.so to load (default: $HEADROOM_CUDART_LIBRARY, then the usual names)",
      schema: flag.text(),
    },
    url: {
      arg: "URL",
      help: `a running Headroom: show its view (GET /api/v1/hardware/vram) before,
while holding and after, and the events that happened meanwhile`,
      schema: flag.url(),
    },
    token: { arg: "TOKEN", help: "API token for --url, when reads need one", schema: flag.text() },
    settle: {
      arg: "S",
      help: `seconds to wait after freeing before the service's "after" view (default 2)`,
      schema: flag.number(2, { min: 0, max: 600 }),
    },
    json: { help: "print the result as JSON on stdout (no table)" },
  },
  notes: `Exit status: 0 done (also when less than asked could be allocated), 1 CUDA unusable or
--url not answering, 2 bad flag.

Against the driver test double:
  HEADROOM_CUDART_LIBRARY=tests/.build/libfakegpu.so FAKE_GPU_STATE=/tmp/x deno task pressure --gib 2 --hold 1`,
});

/** The service's view of one moment, reduced to what the pressure tool shows. */
interface ServiceView {
  takenAt: number;
  source: string;
  device: {
    index: number;
    name: string;
    totalBytes: number;
    usedBytes: number;
    freeBytes: number;
  } | null;
  /** Pipelines placed on the GPU. */
  pipelinesOnGpu: string[];
  /** Sum of their tracked GPU bytes. */
  pipelineGpuBytes: number;
  budgetBytes: number | null;
  headroomBytes: number | null;
}

/** What cudaMemGetInfo said. */
interface MemInfo {
  freeBytes: number;
  totalBytes: number;
}

/** The machine-readable result (`--json`). */
interface PressureResult {
  tool: "pressure";
  device: number;
  library: string;
  requestedBytes: number;
  stepBytes: number;
  heldBytes: number;
  allocations: number;
  /** The first allocation failure, or null when everything asked for was allocated. */
  allocationError: {
    fn: string;
    code: number;
    name: string;
    message: string;
    /** Bytes already held when the first piece failed. */
    atBytes: number;
    /** Size of the piece that failed. */
    chunkBytes: number;
  } | null;
  cuda: { before: MemInfo; holding: MemInfo; after: MemInfo };
  /** Seconds the memory was held. */
  heldSeconds: number;
  /** Why it stopped holding: the hold ran out, or a signal came. */
  endedBy: "hold" | "SIGINT" | "SIGTERM";
  freedBytes: number;
  freeErrors: string[];
  /** Present with --url. */
  service: {
    url: string;
    before: ServiceView;
    /** The last view polled while holding. */
    holding: ServiceView | null;
    /** The highest device-used bytes the service reported while holding. */
    peakUsedBytes: number | null;
    after: ServiceView | null;
    events: HeadroomEvent[];
    eventCounts: Record<string, number>;
    /** True when events went by between two polls unseen. */
    missedEvents: boolean;
    errors: string[];
  } | null;
}

function view(report: VramReport, index: number): ServiceView {
  const device = report.devices.find((d) => d.index === index) ?? null;
  const onGpu = (report.models ?? []).filter((p) => p.placement === "gpu");
  return {
    takenAt: report.takenAt,
    source: report.source,
    device: device && {
      index: device.index,
      name: device.name,
      totalBytes: device.totalBytes,
      usedBytes: device.usedBytes,
      freeBytes: device.freeBytes,
    },
    pipelinesOnGpu: onGpu.map((p) => p.id),
    pipelineGpuBytes: onGpu.reduce((sum, p) => sum + p.gpuBytes, 0),
    budgetBytes: report.scheduler?.budgetBytes ?? null,
    headroomBytes: report.scheduler?.headroomBytes ?? null,
  };
}

function readFlags(args: string[]) {
  const { values } = tool.parse(args);
  return {
    requestedBytes: Math.round(values.gib * GiB),
    stepBytes: Math.round(values["step-gib"] * GiB),
    holdMs: values.hold * 1000,
    device: values.device,
    library: values["cudart-library"],
    url: values.url,
    token: values.token ?? null,
    settleMs: values.settle * 1000,
    json: values.json,
  };
}

/** Polls the service every `everyMs` while running: events, the last view, the peak used. */
function pollService(url: string, token: string | null, device: number, collector: EventCollector) {
  const stop = new AbortController();
  const state = {
    last: null as ServiceView | null,
    peakUsed: null as number | null,
    errors: [] as string[],
    watchPeak: false,
  };
  const done = (async () => {
    while (!stop.signal.aborted) {
      try {
        const report = await getVram(url, token, 5000);
        collector.add(report);
        if (state.watchPeak) {
          state.last = view(report, device);
          const used = state.last.device?.usedBytes;
          if (used !== undefined) state.peakUsed = Math.max(state.peakUsed ?? 0, used);
        }
      } catch (error) {
        if (state.errors.length < 5) state.errors.push((error as Error).message);
      }
      await sleep(250, stop.signal);
    }
  })();
  return {
    state,
    async stop() {
      stop.abort();
      await done;
    },
  };
}

async function main(): Promise<number> {
  const flags = readFlags(Deno.args);
  const log = (line: string) => console.error(line);

  let cuda: Cudart;
  try {
    cuda = openCudart(flags.library);
  } catch (error) {
    log(`${TOOL}: cannot open the CUDA runtime: ${(error as Error).message}`);
    return 1;
  }
  try {
    cuda.setDevice(flags.device);
  } catch (error) {
    cuda.close();
    if (error instanceof CudaError && error.code === CUDA_ERROR.InvalidDevice) {
      tool.fail(new UsageError("--device", `${flags.device}: ${error.message}`));
    }
    log(`${TOOL}: ${(error as Error).message}`);
    return 1;
  }

  // Signals: stop allocating or holding, then free everything.
  const stop = new AbortController();
  const onSigint = () => stop.abort("SIGINT");
  const onSigterm = () => stop.abort("SIGTERM");
  Deno.addSignalListener("SIGINT", onSigint);
  Deno.addSignalListener("SIGTERM", onSigterm);

  let serviceBefore: ServiceView | null = null;
  let collector: EventCollector | null = null;
  let poller: ReturnType<typeof pollService> | null = null;
  if (flags.url) {
    let report: VramReport;
    try {
      report = await getVram(flags.url, flags.token);
    } catch (error) {
      log(`${TOOL}: --url ${flags.url} does not answer: ${(error as Error).message}`);
      cuda.close();
      return 1;
    }
    serviceBefore = view(report, flags.device);
    collector = new EventCollector(EventCollector.newestSeq(report));
    poller = pollService(flags.url, flags.token, flags.device, collector);
  }

  const before = cuda.memGetInfo();
  const held: Array<{ ptr: Deno.PointerValue; bytes: number }> = [];
  let heldBytes = 0;
  let allocationError: PressureResult["allocationError"] = null;
  let step = Math.min(flags.stepBytes, flags.requestedBytes);
  const bar = tool.progress("allocating", flags.requestedBytes, {
    enabled: !flags.json,
    unit: gib,
  });
  while (heldBytes < flags.requestedBytes && !stop.signal.aborted) {
    const chunk = Math.min(step, flags.requestedBytes - heldBytes);
    try {
      held.push({ ptr: cuda.malloc(chunk), bytes: chunk });
      heldBytes += chunk;
      bar.update(heldBytes, `${held.length} allocations`);
    } catch (error) {
      if (!(error instanceof CudaError)) throw error;
      allocationError ??= {
        fn: error.fn,
        code: error.code,
        name: error.cudaName,
        message: error.message,
        atBytes: heldBytes,
        chunkBytes: chunk,
      };
      if (error.code !== CUDA_ERROR.MemoryAllocation || chunk <= MIN_CHUNK) break;
      step = Math.max(MIN_CHUNK, Math.floor(chunk / 2 / MiB) * MiB);
      bar.update(heldBytes, `out of memory: trying ${gib(step)} pieces`);
    }
    await sleep(0); // let a signal in
  }
  bar.stop();
  const holding = cuda.memGetInfo();
  if (allocationError) {
    log(
      `${TOOL}: ${allocationError.name} after ${gib(allocationError.atBytes)} of ${
        gib(flags.requestedBytes)
      }: ` +
        `holding what fit (${gib(heldBytes)})`,
    );
  }

  // Hold.
  if (poller) poller.state.watchPeak = true;
  const heldAt = performance.now();
  if (!stop.signal.aborted) {
    if (Number.isFinite(flags.holdMs)) {
      const holdBar = tool.progress("holding   ", flags.holdMs / 1000, {
        enabled: !flags.json,
        unit: (s) => `${s.toFixed(1)} s`,
      });
      const end = heldAt + flags.holdMs;
      while (!stop.signal.aborted && performance.now() < end) {
        holdBar.update(
          Math.min(flags.holdMs, performance.now() - heldAt) / 1000,
          `${gib(heldBytes)} held`,
        );
        await sleep(Math.min(250, end - performance.now()), stop.signal);
      }
      holdBar.update(Math.min(flags.holdMs, performance.now() - heldAt) / 1000);
      holdBar.stop();
    } else {
      log(`Holding ${gib(heldBytes)} on CUDA device ${flags.device}: press Ctrl-C to free it.`);
      await sleep(2 ** 31 - 1, stop.signal);
      while (!stop.signal.aborted) await sleep(2 ** 31 - 1, stop.signal);
    }
  }
  const heldSeconds = (performance.now() - heldAt) / 1000;
  const endedBy: PressureResult["endedBy"] = stop.signal.aborted
    ? stop.signal.reason as "SIGINT" | "SIGTERM"
    : "hold";
  if (poller) poller.state.watchPeak = false;

  // Free everything.
  let freedBytes = 0;
  const freeErrors: string[] = [];
  for (const { ptr, bytes } of held) {
    try {
      cuda.free(ptr);
      freedBytes += bytes;
    } catch (error) {
      freeErrors.push((error as Error).message);
    }
  }
  const after = cuda.memGetInfo();
  cuda.close();
  log(`Freed ${gib(freedBytes)} (${endedBy === "hold" ? "hold ended" : endedBy}).`);

  let service: PressureResult["service"] = null;
  if (flags.url && poller && collector && serviceBefore) {
    if (flags.settleMs > 0) await sleep(flags.settleMs);
    let serviceAfter: ServiceView | null = null;
    await poller.stop();
    try {
      const report = await getVram(flags.url, flags.token);
      collector.add(report);
      serviceAfter = view(report, flags.device);
    } catch (error) {
      poller.state.errors.push((error as Error).message);
    }
    service = {
      url: flags.url,
      before: serviceBefore,
      holding: poller.state.last,
      peakUsedBytes: poller.state.peakUsed,
      after: serviceAfter,
      events: collector.events(),
      eventCounts: collector.countsByKind(),
      missedEvents: collector.missedSome,
      errors: poller.state.errors,
    };
  }
  Deno.removeSignalListener("SIGINT", onSigint);
  Deno.removeSignalListener("SIGTERM", onSigterm);

  const result: PressureResult = {
    tool: "pressure",
    device: flags.device,
    library: cuda.path,
    requestedBytes: flags.requestedBytes,
    stepBytes: flags.stepBytes,
    heldBytes,
    allocations: held.length,
    allocationError,
    cuda: { before, holding, after },
    heldSeconds: Math.round(heldSeconds * 1000) / 1000,
    endedBy,
    freedBytes,
    freeErrors,
    service,
  };
  tool.report(result, { json: flags.json, text: summary });
  return 0;
}

/**
 * When nothing was evicted, says why (nothing on the GPU, or free VRAM stayed above the
 * headroom) and how much to hold to see one; null when something was evicted.
 */
export function whyNoEviction(s: NonNullable<PressureResult["service"]>): string | null {
  if ((s.eventCounts.eviction ?? 0) > 0) return null;
  const before = s.before;
  if (before.pipelinesOnGpu.length === 0) {
    return "No eviction: no pipeline was on the GPU to evict. Load one there first " +
      `(curl -X POST ${s.url}/api/v1/models/ID/load -H 'Content-Type: application/json' ` +
      `-d '{"device":"gpu"}'), then hold again.`;
  }
  const holding = s.holding ?? before;
  const headroom = holding.headroomBytes ?? before.headroomBytes;
  const free = holding.device?.freeBytes ?? null;
  if (headroom !== null && free !== null && free >= headroom) {
    const more = free - headroom;
    return `No eviction: free VRAM (${gib(free)}) stayed above the ${gib(headroom)} headroom. ` +
      `Hold more than ${gib(more)} more to see one.`;
  }
  return null;
}

function summary(r: PressureResult): string {
  const mem = (m: MemInfo) => `${gib(m.freeBytes)} free of ${gib(m.totalBytes)}`;
  const rows: Array<[string, string]> = [
    ["device", `CUDA ${r.device} (${r.library})`],
    ["asked", gib(r.requestedBytes)],
    ["held", `${gib(r.heldBytes)} in ${r.allocations} allocations`],
    [
      "allocation error",
      r.allocationError
        ? `${r.allocationError.name} at ${gib(r.allocationError.atBytes)} (piece of ${
          gib(r.allocationError.chunkBytes)
        })`
        : "none",
    ],
    ["held for", `${r.heldSeconds.toFixed(1)} s, ended by ${r.endedBy}`],
    [
      "freed",
      `${gib(r.freedBytes)}${r.freeErrors.length ? `, ${r.freeErrors.length} errors` : ""}`,
    ],
    ["CUDA before", mem(r.cuda.before)],
    ["CUDA holding", mem(r.cuda.holding)],
    ["CUDA after", mem(r.cuda.after)],
  ];
  const parts = [formatTable(["pressure", "value"], rows)];
  const s = r.service;
  if (s) {
    const line = (name: string, v: ServiceView | null, used = v?.device?.usedBytes) => [
      name,
      v?.device ? gib(used ?? 0) : "-",
      v?.device ? gib(v.device.freeBytes) : "-",
      v ? `${v.pipelinesOnGpu.length} (${formatBytes(v.pipelineGpuBytes)})` : "-",
      v?.pipelinesOnGpu.join(", ") || "-",
    ];
    parts.push(
      "",
      `Headroom at ${s.url} (source ${s.before.source}):`,
      formatTable(["when", "used", "free", "pipelines on GPU", "ids"], [
        line("before", s.before),
        line("holding", s.holding),
        line("peak", s.holding, s.peakUsedBytes ?? undefined),
        line("after", s.after),
      ]),
    );
    // Evictions first: they are what a person runs this tool to watch for.
    const counts = Object.entries(s.eventCounts)
      .sort(([a], [b]) => Number(b === "eviction") - Number(a === "eviction"))
      .map(([k, n]) => `${k} ${n}`).join(", ");
    parts.push(
      "",
      `Events meanwhile: ${counts || "none"}${s.missedEvents ? " (some went by unseen)" : ""}`,
    );
    const why = whyNoEviction(s);
    if (why) parts.push(why);
    const shown = s.events.filter((e) => e.kind !== "info").slice(-20);
    if (shown.length > 0) {
      parts.push(formatTable(
        ["seq", "kind", "pipeline", "message"],
        shown.map((e) => [e.seq, e.kind, e.pipeline ?? "-", e.message]),
      ));
    }
    for (const error of s.errors) parts.push(`service poll error: ${error}`);
  }
  return parts.join("\n");
}

if (import.meta.main) Deno.exit(await main());

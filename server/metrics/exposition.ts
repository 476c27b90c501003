/**
 * Every family `GET /metrics` exports, built from the live state on each scrape:
 * - GPU gauges labelled as dcgm-exporter labels its own (`gpu`, `UUID`, `modelName`,
 *   `Hostname`), so `headroom_gpu_*` joins `DCGM_FI_*` in PromQL;
 * - the placement policy's budget, headroom and room left;
 * - per-model series (`headroom_model_*`, labelled `model` and `Hostname`);
 * - counters and histograms kept from the event log since start;
 * - each model's requests by outcome and their durations (Triton's per-model inference
 *   metrics: request, queue and compute time), as the scheduler recorded them.
 * @module
 */
import type { MetricFamily, Sample } from "../http/prometheus.ts";
import type {
  BatchFigures,
  DeviceSnapshot,
  ModelRow,
  SchedulerStatus,
  VramSample,
} from "../../core/types.ts";
import type { Histogram, HistogramSeries } from "../../core/histogram.ts";
import type { RequestFigures } from "../../core/request_figures.ts";
import { DEVICES, type EventCounters } from "./event_counters.ts";
import { processGrowthBytesOf } from "./loaded_models.ts";

/** What one scrape reads. */
export interface ScrapeInput {
  hostname: string;
  sample: VramSample;
  models: ModelRow[];
  scheduler: SchedulerStatus;
  counters: EventCounters;
  requests: RequestFigures;
  startedAt: number;
}

const GPU_GAUGES: Array<
  { name: string; help: string; value: (d: DeviceSnapshot) => number | null }
> = [
  {
    name: "headroom_gpu_memory_total_bytes",
    help: "Total GPU memory.",
    value: (d) => d.totalBytes,
  },
  {
    name: "headroom_gpu_memory_used_bytes",
    help: "GPU memory used by all processes.",
    value: (d) => d.usedBytes,
  },
  { name: "headroom_gpu_memory_free_bytes", help: "Free GPU memory.", value: (d) => d.freeBytes },
  {
    name: "headroom_gpu_memory_reserved_bytes",
    help: "GPU memory held by this Headroom process (NVML process list).",
    value: (d) => d.reservedBytes,
  },
  {
    name: "headroom_gpu_memory_active_bytes",
    help: "Bytes of live GPU buffers tracked in Headroom's pipelines.",
    value: (d) => d.activeBytes,
  },
  {
    name: "headroom_gpu_utilization_ratio",
    help: "GPU busy ratio (0-1).",
    value: (d) => d.utilizationPercent === null ? null : d.utilizationPercent / 100,
  },
  {
    name: "headroom_gpu_temperature_celsius",
    help: "GPU temperature.",
    value: (d) => d.temperatureC,
  },
  {
    name: "headroom_gpu_up",
    help: "1 while the driver answers for this GPU, 0 when lost.",
    value: (d) => d.state === "ok" ? 1 : 0,
  },
];

/** The label set dcgm-exporter puts on a GPU's series. */
export function dcgmLabels(device: DeviceSnapshot, hostname: string): Record<string, string> {
  return {
    gpu: String(device.index),
    UUID: device.uuid,
    modelName: device.name,
    Hostname: hostname,
  };
}

/** Builds every family for one scrape. */
export function buildMetrics(input: ScrapeInput): MetricFamily[] {
  const { hostname, models, counters } = input;
  const node = { Hostname: hostname };
  const families: MetricFamily[] = GPU_GAUGES.map((gauge) => ({
    name: gauge.name,
    help: gauge.help,
    samples: input.sample.devices.flatMap((device) => {
      const value = gauge.value(device);
      return value === null ? [] : [{ labels: dcgmLabels(device, hostname), value }];
    }),
  }));
  const policy = input.scheduler;
  families.push(
    gauge("headroom_budget_bytes", "VRAM Headroom may use on device 0 (budget or total).", [
      { labels: node, value: policy.budgetBytes },
    ]),
    gauge("headroom_headroom_bytes", "Free VRAM Headroom keeps on device 0.", [
      { labels: node, value: policy.headroomBytes },
    ]),
    gauge(
      "headroom_available_bytes",
      "VRAM free above the headroom within the budget: what a new load can take without evicting (negative: short).",
      [{ labels: node, value: policy.availableBytes }],
    ),
  );

  const perModel = (value: (m: ModelRow) => number | null): Sample[] =>
    models.flatMap((m) => {
      const v = value(m);
      return v === null ? [] : [{ labels: { model: m.id, ...node }, value: v }];
    });
  families.push(
    gauge(
      "headroom_model_vram_bytes",
      "GPU bytes alive in the model's worker now (tracked buffers; 0 when not on the GPU).",
      perModel((m) => m.gpuBytes),
    ),
    gauge(
      "headroom_model_ram_bytes",
      "RAM the model's session holds now (the API's ramBytes; 0 when unloaded).",
      perModel((m) => Math.max(0, m.ramBytes)),
    ),
    gauge(
      "headroom_model_process_growth_bytes",
      "The process's RSS growth measured across the model's last load, while it is loaded (0 when unloaded); workers share one process.",
      perModel((m) =>
        m.display === "loaded" && m.placement !== "none"
          ? processGrowthBytesOf(m, m.placement as "gpu" | "cpu") ?? 0
          : 0
      ),
    ),
    gauge(
      "headroom_model_loaded",
      "1 for the device the model's session runs on (gpu or cpu), 0 for the other.",
      models.flatMap((m) =>
        DEVICES.map((device) => ({
          labels: { model: m.id, device, ...node },
          value: m.display === "loaded" && m.placement === device ? 1 : 0,
        }))
      ),
    ),
    gauge(
      "headroom_model_last_used_seconds",
      "Unix time of the model's last request (absent before its first).",
      perModel((m) => m.lastUsedAt === null ? null : m.lastUsedAt / 1000),
    ),
    gauge(
      "headroom_model_last_load_bytes",
      "GPU bytes last measured after loading the model (its saved profile; kept while unloaded).",
      perModel((m) => m.gpuProfile?.gpuLoadBytes ?? null),
    ),
    gauge(
      "headroom_model_leak",
      "1 while a release of the model's GPU memory was not seen back on the device.",
      perModel((m) => m.leak ? 1 : 0),
    ),
  );

  families.push(
    counter(
      "headroom_evictions_total",
      "Pipelines moved GPU -> CPU by the policy, by reason (make_room, oom, headroom).",
      [...counters.evictions].map(([reason, value]) => ({ labels: { reason, ...node }, value })),
    ),
    counter(
      "headroom_oom_retries_total",
      "Out-of-memory errors on the GPU, each followed by one more eviction and a retry, or a fallback.",
      [{ labels: node, value: counters.oomRetries }],
    ),
    counter(
      "headroom_loads_total",
      "Model loads by device and result (success, failure).",
      [...counters.loads].map(([key, value]) => {
        const [device, result] = key.split("/");
        return { labels: { device, result, ...node }, value };
      }),
    ),
    counter(
      "headroom_auto_switches_total",
      "Requests for another model that switched the exclusive model implicitly (exclusive mode).",
      [{ labels: node, value: counters.autoSwitches }],
    ),
    counter(
      "headroom_release_leaks_total",
      "GPU releases whose memory did not come back on the device in time.",
      [{ labels: node, value: counters.leaks }],
    ),
    histogramFamily(
      "headroom_load_duration_seconds",
      "Seconds each model load took, by device.",
      counters.loadSeconds,
      node,
    ),
    histogramFamily(
      "headroom_offload_duration_seconds",
      "Seconds each GPU -> CPU move took.",
      counters.offloadSeconds,
      node,
    ),
    histogramFamily(
      "headroom_rehydrate_duration_seconds",
      "Seconds each CPU -> GPU move took.",
      counters.rehydrateSeconds,
      node,
    ),
    {
      name: "headroom_batch_size",
      help: "Rows each tensor run of a model took (dynamic batching; 1 = alone).",
      type: "histogram",
      bounds: BATCH_BUCKETS,
      series: models.flatMap((m) =>
        m.batch ? [{ labels: { model: m.id, ...node }, ...batchSeries(m.batch) }] : []
      ),
    },
    counter(
      "headroom_inference_requests_total",
      'Inference requests by model and outcome ("success", or the error code: queue_full, timeout, cancelled, bad_tensor…).',
      [...input.requests.outcomes].flatMap(([model, byOutcome]) =>
        [...byOutcome].map(([outcome, value]) => ({
          labels: { model, outcome, ...node },
          value,
        }))
      ),
    ),
    histogramFamily(
      "headroom_inference_request_duration_seconds",
      "Seconds from a request's arrival to its answer (answered requests; loads and moves included).",
      input.requests.totalSeconds,
      node,
    ),
    histogramFamily(
      "headroom_inference_queue_duration_seconds",
      "Seconds an answered request waited in its pipeline's queue (behind runs and moves, its batch filling).",
      input.requests.queueSeconds,
      node,
    ),
    histogramFamily(
      "headroom_inference_compute_duration_seconds",
      "Seconds of the session call that carried an answered request (a batch's members each count it).",
      input.requests.computeSeconds,
      node,
    ),
    gauge("headroom_start_time_seconds", "Unix time this Headroom process started.", [
      { labels: node, value: input.startedAt / 1000 },
    ]),
  );
  return families;
}

/** Bucket bounds of `headroom_batch_size`, in rows. */
const BATCH_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** A model's runs by row count as cumulative histogram buckets. */
function batchSeries(batch: BatchFigures): Omit<HistogramSeries, "labels"> {
  const counts = Object.entries(batch.runsByRows).map(([rows, runs]) => [Number(rows), runs]);
  return {
    buckets: BATCH_BUCKETS.map((bound) =>
      counts.reduce((sum, [rows, runs]) => rows <= bound ? sum + runs : sum, 0)
    ),
    sum: batch.rows,
    count: batch.runs,
  };
}

/** A histogram family: the histogram's series, each with the node's labels added. */
function histogramFamily(
  name: string,
  help: string,
  histogram: Histogram,
  node: Record<string, string>,
): MetricFamily {
  return {
    name,
    help,
    type: "histogram",
    bounds: histogram.bounds,
    series: histogram.series().map((s) => ({ ...s, labels: { ...s.labels, ...node } })),
  };
}

function gauge(name: string, help: string, samples: Sample[]): MetricFamily {
  return { name, help, samples };
}

function counter(name: string, help: string, samples: Sample[]): MetricFamily {
  return { name, help, type: "counter", samples };
}

/** `GET /metrics`: Prometheus text, or JSON for `Accept: application/json`. */
import type { Handlers } from "../core/http/context.ts";
import { type Gauge, renderPrometheus } from "../core/http/prometheus.ts";
import type { DeviceSnapshot } from "../core/types.ts";

const GAUGES: Array<{ name: string; help: string; value: (d: DeviceSnapshot) => number | null }> = [
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

/** Renders one gauge per figure, labelled by gpu index, uuid and name. */
export const handler: Handlers = {
  GET: (c) => {
    const sample = c.var.services.monitor.current();
    if ((c.req.header("accept") ?? "").includes("application/json")) {
      return c.json({ takenAt: sample.takenAt, devices: sample.devices, loaded_models: [] });
    }
    const gauges: Gauge[] = GAUGES.map((gauge) => ({
      name: gauge.name,
      help: gauge.help,
      samples: sample.devices.flatMap((device) => {
        const value = gauge.value(device);
        if (value === null) return [];
        return [{
          labels: { gpu: String(device.index), uuid: device.uuid, name: device.name },
          value,
        }];
      }),
    }));
    return c.body(renderPrometheus(gauges), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  },
};

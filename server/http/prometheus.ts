/**
 * Prometheus text exposition (format 0.0.4) for the gauges, counters and histograms
 * Headroom exports. Small enough to write here; label values are escaped as the format
 * requires, and every family carries HELP and TYPE (`promtool check metrics` passes).
 * @module
 */
import type { HistogramSeries } from "../../core/histogram.ts";

/** One labelled value. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** One gauge with its help text and labelled samples. */
export interface Gauge {
  name: string;
  help: string;
  /** Default "gauge". */
  type?: "gauge" | "counter";
  samples: Sample[];
}

/** One histogram family: its bucket bounds and a series per label set. */
export interface HistogramFamily {
  name: string;
  help: string;
  type: "histogram";
  bounds: readonly number[];
  series: HistogramSeries[];
}

/** Any family Headroom renders. */
export type MetricFamily = Gauge | HistogramFamily;

/** Renders metric families as Prometheus text. */
export function renderPrometheus(families: MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    lines.push(`# TYPE ${family.name} ${family.type ?? "gauge"}`);
    if (family.type === "histogram") {
      for (const series of family.series) {
        family.bounds.forEach((bound, i) =>
          lines.push(
            line(
              `${family.name}_bucket`,
              { ...series.labels, le: String(bound) },
              series.buckets[i],
            ),
          )
        );
        lines.push(line(`${family.name}_bucket`, { ...series.labels, le: "+Inf" }, series.count));
        lines.push(line(`${family.name}_sum`, series.labels, series.sum));
        lines.push(line(`${family.name}_count`, series.labels, series.count));
      }
      continue;
    }
    for (const sample of family.samples) lines.push(line(family.name, sample.labels, sample.value));
  }
  return lines.join("\n") + "\n";
}

function line(name: string, labels: Record<string, string>, value: number): string {
  const text = Object.entries(labels)
    .map(([key, v]) => `${key}="${escapeLabel(v)}"`)
    .join(",");
  return `${name}${text ? `{${text}}` : ""} ${formatValue(value)}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

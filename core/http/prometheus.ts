/**
 * Prometheus text exposition (format 0.0.4) for the few gauges Headroom exports.
 * Small enough to write here; label values are escaped as the format requires.
 * @module
 */

/** One gauge with its help text and labelled samples. */
export interface Gauge {
  name: string;
  help: string;
  samples: Array<{ labels: Record<string, string>; value: number }>;
}

/** Renders gauges as Prometheus text. */
export function renderPrometheus(gauges: Gauge[]): string {
  const lines: string[] = [];
  for (const gauge of gauges) {
    lines.push(`# HELP ${gauge.name} ${gauge.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    lines.push(`# TYPE ${gauge.name} gauge`);
    for (const sample of gauge.samples) {
      const labels = Object.entries(sample.labels)
        .map(([key, value]) => `${key}="${escapeLabel(value)}"`)
        .join(",");
      lines.push(`${gauge.name}${labels ? `{${labels}}` : ""} ${formatValue(sample.value)}`);
    }
  }
  return lines.join("\n") + "\n";
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

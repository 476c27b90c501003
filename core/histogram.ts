/**
 * A Prometheus histogram: cumulative bucket counts, a sum and a count, per label set.
 * Small enough to keep here; kept by server/metrics/ and core/request_figures.ts,
 * rendered by server/http/prometheus.ts.
 * @module
 */

/** Bucket bounds (seconds) for model transitions: tens of milliseconds to minutes. */
export const TRANSITION_BUCKETS_S: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
];

/** One label set's observations. */
export interface HistogramSeries {
  labels: Record<string, string>;
  /** Count of observations ≤ each bound of {@link Histogram.bounds}, in order (cumulative). */
  buckets: number[];
  sum: number;
  count: number;
}

/** Observations of one quantity, by label set. */
export class Histogram {
  readonly #series = new Map<string, HistogramSeries>();

  constructor(readonly bounds: readonly number[] = TRANSITION_BUCKETS_S) {}

  /** Makes the label set's series exist (all zero), so it is exported before any observation. */
  touch(labels: Record<string, string> = {}): HistogramSeries {
    const key = JSON.stringify(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels, buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    return series;
  }

  /** Records one observation. */
  observe(value: number, labels: Record<string, string> = {}): void {
    const series = this.touch(labels);
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]) series.buckets[i]++;
    series.sum += value;
    series.count++;
  }

  /** Every series, in the order first seen. */
  series(): HistogramSeries[] {
    return [...this.#series.values()];
  }
}

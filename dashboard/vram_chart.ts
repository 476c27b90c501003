/**
 * The uPlot chart behind the history island: one device's used bytes against its total,
 * budget and headroom line over a time window, with timeline events drawn as marks on
 * the time axis. Browser only (it measures and draws on a canvas).
 * @module
 */
import uPlot from "uplot";
import type { VramReport, VramSample } from "../core/types.ts";
import type { TimelineEvent } from "./live_vram.ts";
import { type ConfiguredLimits, deviceLimits, formatBytes } from "./vram_format.ts";

/** What the chart needs besides its samples. */
export interface ChartContext {
  deviceIndex: number;
  seconds: number;
  limits: ConfiguredLimits;
  /** The latest report (for the scheduler's figures, when it carries them). */
  report: VramReport | null;
}

const HEIGHT = 220;
/** Y-axis steps: powers of two bytes, so ticks land on 4 GiB, 8 GiB… rather than 9.31 GiB. */
const BINARY_STEPS = Array.from({ length: 53 }, (_, i) => 2 ** i);
const hhmm = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});
const hhmmss = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A live-updating chart in `container`. */
export class VramChart {
  #plot: uPlot;
  #data: [number[], number[], number[], (number | null)[], number[]] = [[], [], [], [], []];
  #context: ChartContext;
  #events: TimelineEvent[] = [];
  #lastSampleAt = 0;
  /** Whether the last point is a carried-forward copy (replaced by the next real sample). */
  #carried = false;
  #resize: ResizeObserver;

  constructor(container: HTMLElement, samples: VramSample[], context: ChartContext) {
    this.#context = context;
    for (const sample of samples) this.#push(sample);
    const color = {
      text: cssVar("--muted"),
      grid: cssVar("--grid"),
      used: cssVar("--accent"),
      usedFill: cssVar("--accent-fill"),
      total: cssVar("--muted"),
      budget: cssVar("--warn"),
      line: cssVar("--high"),
    };
    const axis = {
      stroke: color.text,
      grid: { stroke: color.grid, width: 1 },
      ticks: { stroke: color.grid, width: 1 },
      font: "11px system-ui, sans-serif",
    };
    // With the cursor off the chart, the legend shows the latest figures.
    const latest = (series: number) => this.#data[series].at(-1) ?? null;
    const bytes =
      (series: number) => (_u: uPlot, v: number | null, _s: number, i: number | null) => {
        const value = i === null ? latest(series) : v;
        return value === null || value === undefined ? "–" : formatBytes(value);
      };
    const time = (_u: uPlot, v: number | null, _s: number, i: number | null) => {
      const value = i === null ? latest(0) : v;
      return value === null || value === undefined ? "–" : hhmmss.format(value * 1000);
    };
    this.#plot = new uPlot(
      {
        width: Math.max(200, container.clientWidth),
        height: HEIGHT,
        scales: {
          x: { time: true },
          y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.05] },
        },
        axes: [
          {
            ...axis,
            space: 64,
            values: (_u, ticks, _axis, _space, step) =>
              ticks.map((t) => (step < 60 ? hhmmss : hhmm).format(t * 1000)),
          },
          {
            ...axis,
            size: 72,
            incrs: BINARY_STEPS,
            values: (_u, ticks) => ticks.map((t) => formatBytes(t)),
          },
        ],
        series: [
          { label: "Time", value: time },
          { label: "Used", stroke: color.used, fill: color.usedFill, width: 2, value: bytes(1) },
          { label: "Total", stroke: color.total, width: 1, dash: [4, 4], value: bytes(2) },
          { label: "Budget", stroke: color.budget, width: 1, dash: [6, 3], value: bytes(3) },
          {
            label: "Headroom line",
            stroke: color.line,
            width: 1,
            dash: [2, 3],
            value: bytes(4),
          },
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
        hooks: { draw: [(u) => this.#drawEvents(u)] },
      },
      this.#data,
      container,
    );
    this.#resize = new ResizeObserver(() => {
      this.#plot.setSize({ width: Math.max(200, container.clientWidth), height: HEIGHT });
    });
    this.#resize.observe(container);
    this.#rescale();
  }

  /** Adds a sample if it is newer than the last one. */
  append(sample: VramSample): void {
    if (sample.takenAt <= this.#lastSampleAt) return;
    if (this.#carried) this.#pop();
    this.#push(sample);
    this.#update();
  }

  /** Carries the last figures forward to now (the stream is live, so they still hold). */
  extendTo(nowMs: number): void {
    const x = this.#data[0];
    if (x.length === 0 || nowMs / 1000 <= x[x.length - 1]) return;
    if (!this.#carried) {
      for (const column of this.#data) column.push(column[column.length - 1] as number);
      this.#carried = true;
    }
    x[x.length - 1] = nowMs / 1000;
    this.#update();
  }

  /** Replaces the events drawn on the time axis. */
  setEvents(events: TimelineEvent[]): void {
    this.#events = events;
    this.#plot.redraw(false);
  }

  /** Removes the chart. */
  destroy(): void {
    this.#resize.disconnect();
    this.#plot.destroy();
  }

  #pop() {
    for (const column of this.#data) column.pop();
    this.#carried = false;
  }

  #update() {
    this.#trim();
    this.#plot.setData(this.#data, false);
    this.#rescale();
    // setData leaves the legend as it was; at rest it shows the latest figures.
    if (this.#plot.cursor.idx == null) this.#plot.setLegend({ idx: null as unknown as number });
  }

  #push(sample: VramSample) {
    this.#lastSampleAt = sample.takenAt;
    const device = sample.devices.find((d) => d.index === this.#context.deviceIndex);
    if (!device) return;
    const { report, limits } = this.#context;
    const applied = deviceLimits(report, device, limits);
    this.#data[0].push(sample.takenAt / 1000);
    this.#data[1].push(device.usedBytes);
    this.#data[2].push(device.totalBytes);
    this.#data[3].push(applied.budgetBytes);
    this.#data[4].push(applied.lineBytes);
  }

  #trim() {
    const from = Date.now() / 1000 - this.#context.seconds;
    let drop = 0;
    while (drop < this.#data[0].length - 1 && this.#data[0][drop + 1] < from) drop++;
    if (drop > 0) { for (const column of this.#data) column.splice(0, drop); }
  }

  #rescale() {
    const now = Date.now() / 1000;
    this.#plot.setScale("x", { min: now - this.#context.seconds, max: now });
  }

  #drawEvents(u: uPlot) {
    if (this.#events.length === 0) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.lineWidth = devicePixelRatio;
    ctx.setLineDash([3 * devicePixelRatio, 3 * devicePixelRatio]);
    for (const event of this.#events) {
      const x = u.valToPos(event.at / 1000, "x", true);
      if (x < left || x > left + width) continue;
      const color = cssVar(
        event.kind === "oom" || event.kind === "error"
          ? "--high"
          : event.kind === "eviction"
          ? "--warn"
          : "--muted",
      );
      ctx.strokeStyle = color;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      // A small flag at the top, so a mark reads as an event rather than a grid line.
      const size = 4 * devicePixelRatio;
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(x - size, top);
      ctx.lineTo(x + size, top);
      ctx.lineTo(x, top + size * 1.5);
      ctx.closePath();
      ctx.fill();
    }
    ctx.restore();
  }
}

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
  /** The latest report (for the offloader's figures, when it carries them). */
  report: VramReport | null;
}

const HEIGHT = 220;

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A live-updating chart in `container`. */
export class VramChart {
  #plot: uPlot;
  #data: [number[], number[], number[], (number | null)[], number[]] = [[], [], [], [], []];
  #context: ChartContext;
  #events: TimelineEvent[] = [];
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
    const bytes = (_u: uPlot, v: number | null) => v === null ? "–" : formatBytes(v);
    this.#plot = new uPlot(
      {
        width: Math.max(200, container.clientWidth),
        height: HEIGHT,
        scales: {
          x: { time: true },
          y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.05] },
        },
        axes: [
          axis,
          { ...axis, size: 72, values: (_u, ticks) => ticks.map((t) => formatBytes(t)) },
        ],
        series: [
          {},
          { label: "Used", stroke: color.used, fill: color.usedFill, width: 2, value: bytes },
          { label: "Total", stroke: color.total, width: 1, dash: [4, 4], value: bytes },
          { label: "Budget", stroke: color.budget, width: 1, dash: [6, 3], value: bytes },
          { label: "Headroom line", stroke: color.line, width: 1, dash: [2, 3], value: bytes },
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
    const last = this.#data[0].at(-1);
    if (last !== undefined && sample.takenAt / 1000 <= last) return;
    this.#push(sample);
    this.#trim();
    this.#plot.setData(this.#data, false);
    this.#rescale();
  }

  /** Carries the last figures forward to now (the stream is live, so they still hold). */
  extendTo(nowMs: number): void {
    const x = this.#data[0];
    if (x.length === 0) return;
    const t = nowMs / 1000;
    if (t <= x[x.length - 1]) return;
    for (const column of this.#data) column.push(column[column.length - 1] as number);
    x[x.length - 1] = t;
    this.#trim();
    this.#plot.setData(this.#data, false);
    this.#rescale();
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

  #push(sample: VramSample) {
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
      ctx.strokeStyle = cssVar(
        event.kind === "oom" || event.kind === "error" ? "--high" : "--muted",
      );
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
    }
    ctx.restore();
  }
}

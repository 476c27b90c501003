/**
 * How the dashboard reads a device's figures: utilization levels and their thresholds,
 * the budget and headroom that apply, and the words for each.
 * @module
 */
import type { VramBudget } from "../core/config.ts";
import type { DeviceSnapshot, VramReport } from "../core/types.ts";
import { formatBytes } from "../core/units.ts";

export { formatBytes };

/** Utilization level: green below 60 %, amber below 80 %, red from 80 %, critical from 90 %. */
export type VramLevel = "ok" | "warn" | "high" | "critical";

/**
 * The level for a used share in percent, judged on the percent as the page shows it
 * ({@link shownPercent}): 89.6 % reads "90 %", so it is critical too, never a "90 %"
 * without the warning.
 */
export function vramLevel(percent: number): VramLevel {
  const shown = shownPercent(percent);
  if (shown >= 90) return "critical";
  if (shown >= 80) return "high";
  if (shown >= 60) return "warn";
  return "ok";
}

/** A percent rounded as {@link formatPercent} writes it: one decimal below 10, none above. */
export function shownPercent(percent: number): number {
  return percent < 10 ? Math.round(percent * 10) / 10 : Math.round(percent);
}

/** Used bytes as a percent of the total (0 for a device with no total). */
export function usedPercent(device: Pick<DeviceSnapshot, "usedBytes" | "totalBytes">): number {
  return device.totalBytes > 0 ? (device.usedBytes / device.totalBytes) * 100 : 0;
}

/** A percent for people: one decimal below 10, none above. */
export function formatPercent(percent: number): string {
  const shown = shownPercent(percent);
  return `${shown < 10 ? shown.toFixed(1) : shown} %`;
}

/** The budget and headroom as configured (what the page knows before the scheduler reports). */
export interface ConfiguredLimits {
  budget: VramBudget | null;
  headroomBytes: number;
}

/** The budget and headroom that apply to one device, and where they come from. */
export interface DeviceLimits {
  /** Bytes Headroom may use on the device (null: the whole device). */
  budgetBytes: number | null;
  /** Free bytes to keep. */
  headroomBytes: number;
  /** Used bytes above this line eat into the headroom: (budget or total) − headroom. */
  lineBytes: number;
  from: "scheduler" | "config";
}

/** The limits for `device`: the scheduler's figures (device 0) when reported, else the config's. */
export function deviceLimits(
  report: VramReport | null,
  device: DeviceSnapshot,
  configured: ConfiguredLimits,
): DeviceLimits {
  // The scheduler manages device 0; other devices show the configured figures.
  const scheduler = device.index === 0 ? report?.scheduler : undefined;
  if (scheduler) {
    const { budgetBytes, headroomBytes } = scheduler;
    return {
      budgetBytes,
      headroomBytes,
      lineBytes: Math.max(0, budgetBytes - headroomBytes),
      from: "scheduler",
    };
  }
  const budget = configured.budget;
  const budgetBytes = budget === null
    ? null
    : budget.kind === "bytes"
    ? Math.min(budget.bytes, device.totalBytes)
    : Math.round((device.totalBytes * budget.percent) / 100);
  const headroomBytes = configured.headroomBytes;
  return {
    budgetBytes,
    headroomBytes,
    lineBytes: Math.max(0, (budgetBytes ?? device.totalBytes) - headroomBytes),
    from: "config",
  };
}

/** "12 s", "3 min", "2 h": an age for the staleness indicator. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/**
 * One device's memory bar: used of total, colored by utilization (green below 60 %,
 * amber below 80 %, red above), the budget and headroom lines on it, a tooltip with
 * every figure on hover or keyboard focus, and a `role="meter"` with the numbers.
 * @module
 */
import type { DeviceSnapshot } from "../core/types.ts";
import {
  type DeviceLimits,
  formatBytes,
  formatPercent,
  usedPercent,
  vramLevel,
} from "../dashboard/vram_format.ts";

/** Props of {@link VramBar}. */
export interface VramBarProps {
  device: DeviceSnapshot;
  limits: DeviceLimits;
}

const WIDTH = 1000;

/** The bar of one device. */
export function VramBar({ device, limits }: VramBarProps) {
  const percent = usedPercent(device);
  const lost = device.state === "lost";
  const level = vramLevel(percent);
  const tipId = `vram-tip-${device.index}`;
  const x = (bytes: number) =>
    device.totalBytes > 0 ? Math.min(WIDTH, (bytes / device.totalBytes) * WIDTH) : 0;
  const used = formatBytes(device.usedBytes);
  const total = formatBytes(device.totalBytes);
  const free = formatBytes(device.freeBytes);
  const extras = [
    device.utilizationPercent === null ? null : `${device.utilizationPercent} % busy`,
    device.temperatureC === null ? null : `${device.temperatureC} °C`,
  ].filter(Boolean).join(" · ");
  return (
    <div class="vram" data-level={level} data-state={device.state} data-device={device.index}>
      <div class="vram-head">
        <span class="vram-name" title={device.uuid}>
          <span class="vram-index">GPU {device.index}</span> {device.name}
        </span>
        <span class="vram-figures">
          <span class="vram-used">{used}</span> / {total}{" "}
          <strong class="vram-percent">{formatPercent(percent)}</strong>
        </span>
      </div>
      <div
        class="vram-meter tip-anchor"
        role="meter"
        tabIndex={0}
        aria-label={`GPU ${device.index} ${device.name} memory used`}
        aria-valuemin={0}
        aria-valuemax={device.totalBytes}
        aria-valuenow={device.usedBytes}
        aria-valuetext={`${used} of ${total} used (${formatPercent(percent)}), ${free} free`}
        aria-describedby={tipId}
      >
        <svg
          class="vram-track"
          viewBox={`0 0 ${WIDTH} 10`}
          preserveAspectRatio="none"
          aria-hidden="true"
          focusable="false"
        >
          <rect class="vram-fill" x="0" y="0" height="10" width={x(device.usedBytes)} />
          {limits.budgetBytes !== null && (
            <line
              class="vram-mark vram-mark-budget"
              x1={x(limits.budgetBytes)}
              x2={x(limits.budgetBytes)}
              y1="0"
              y2="10"
            />
          )}
          <line
            class="vram-mark vram-mark-line"
            x1={x(limits.lineBytes)}
            x2={x(limits.lineBytes)}
            y1="0"
            y2="10"
          />
        </svg>
      </div>
      <div class="tip vram-tip" role="tooltip" id={tipId}>
        <dl>
          <dt>Total</dt>
          <dd>{total}</dd>
          <dt>Used</dt>
          <dd>{used} ({formatPercent(percent)})</dd>
          <dt>Free</dt>
          <dd>{free}</dd>
          <dt>Reserved</dt>
          <dd>
            {formatBytes(device.reservedBytes)} <small>this process, per the driver</small>
          </dd>
          <dt>Active</dt>
          <dd>
            {formatBytes(device.activeBytes)} <small>live buffers in pipelines</small>
          </dd>
          <dt>Budget</dt>
          <dd>
            {limits.budgetBytes === null ? "whole device" : formatBytes(limits.budgetBytes)}
            {" · headroom "}
            {formatBytes(limits.headroomBytes)}
            {" → offload above "}
            {formatBytes(limits.lineBytes)}
            <small>{limits.from === "scheduler" ? " (scheduler)" : " (configured)"}</small>
          </dd>
        </dl>
      </div>
      <div class="vram-sub">
        <span>{free} free</span>
        <span>{formatBytes(device.activeBytes)} active</span>
        {extras && <span>{extras}</span>}
      </div>
      {lost && (
        <p class="vram-alert vram-alert-lost" role="alert">
          <strong>Device lost</strong> — figures are the last known.{" "}
          <span class="vram-error" title={device.error}>
            {device.error ?? "The driver stopped answering."}
          </span>
        </p>
      )}
      {!lost && level === "critical" && (
        <p class="vram-alert vram-alert-critical" role="alert">
          Critical: {formatPercent(percent)} used, only {free} free
        </p>
      )}
    </div>
  );
}

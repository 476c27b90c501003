/**
 * The status bar's live part: one memory bar per device, or why there is no GPU, and
 * whether the figures are live or stale. Starts the shared live feed.
 * @module
 */
import { useEffect } from "preact/hooks";
import type { VramReport } from "../core/types.ts";
import { VramBar } from "../components/VramBar.tsx";
import { type ConfiguredLimits, deviceLimits, formatAge } from "../dashboard/vram_format.ts";
import {
  clock,
  connectLive,
  dataReceivedAt,
  linkError,
  linkState,
  liveReport,
} from "../dashboard/live_vram.ts";

/** Props of {@link VramStatus}. */
export interface VramStatusProps {
  /** The report when the page was rendered (null: still loading). */
  initial: VramReport | null;
  limits: ConfiguredLimits;
}

/** Live, stale or server stopped; while not live, how old the data on screen is and why. */
function LinkIndicator() {
  const state = linkState.value;
  const text = state === "live"
    ? "Live"
    : state === "stale"
    ? "Stale — reconnecting"
    : state === "stopped"
    ? "Server stopped"
    : state === "still"
    ? "Still picture (?settle): not live"
    : "Connecting…";
  return (
    <div class="link-box" role="status">
      <p class="link" data-link={state}>
        <span class="link-dot" aria-hidden="true" />
        {text}
      </p>
      {(state === "stale" || state === "stopped") && (
        <p class="link-age" title={linkError.value ?? undefined}>
          data {formatAge(clock.value - dataReceivedAt.value)} old · polling every 3 s
        </p>
      )}
    </div>
  );
}

/** Every device's bar, the no-GPU notice, or the loading state; and the link indicator. */
export default function VramStatus({ initial, limits }: VramStatusProps) {
  useEffect(() => connectLive(initial), []);
  const report = liveReport.value ?? initial;
  let body;
  if (report === null) {
    body = linkError.value
      ? <p class="status-msg status-error">Cannot read GPU memory: {linkError.value}</p>
      : <p class="status-msg" aria-busy="true">Reading GPU memory…</p>;
  } else if (report.source === "none" || report.devices.length === 0) {
    body = (
      <div class="nogpu" role="status">
        <p>
          <strong>No GPU in use.</strong>{" "}
          Headroom is running every pipeline on the CPU: slower, but it keeps serving.
        </p>
        {report.reason && <p class="nogpu-reason">{report.reason}</p>}
      </div>
    );
  } else {
    body = (
      <div class="devices">
        {report.devices.map((device) => (
          <VramBar
            key={device.index}
            device={device}
            limits={deviceLimits(report, device, limits)}
          />
        ))}
      </div>
    );
  }
  const source = report && report.source !== "none"
    ? `${report.source.toUpperCase()}${
      report.driverVersion ? ` · driver ${report.driverVersion}` : ""
    }`
    : null;
  const cpu = report?.cpuEngine;
  return (
    <div class="status" data-source={report?.source ?? "loading"}>
      {body}
      <div class="status-side">
        <LinkIndicator />
        {source && <p class="status-source">{source}</p>}
        {cpu && (
          <p class="status-cpu-engine" data-engine={cpu.engine} title={cpu.reason}>
            CPU engine: {cpu.engine}
            {cpu.engine === "native" ? ` · ${cpu.threads} threads` : ""}
          </p>
        )}
      </div>
    </div>
  );
}

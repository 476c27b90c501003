/**
 * The history chart: one device's used memory against its total, budget and headroom
 * line over the last 10 minutes or hour, fed by the history API and then by the live
 * feed. Timeline events (see `timelineEvents`) are marked on the time axis.
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { VramSample, VramSourceKind } from "../core/types.ts";
import type { ConfiguredLimits } from "../dashboard/vram_format.ts";
import { VramChart } from "../dashboard/vram_chart.ts";
import { linkState, liveReport, timelineEvents } from "../dashboard/live_vram.ts";

/** Props of {@link VramHistory}. */
export interface VramHistoryProps {
  /** The VRAM source when the page was rendered ("none": nothing to chart). */
  source: VramSourceKind;
  limits: ConfiguredLimits;
  /** The history the service keeps, in seconds: longer windows are not offered. */
  maxSeconds: number;
}

const WINDOWS = [
  { seconds: 600, label: "Last 10 min" },
  { seconds: 3600, label: "Last hour" },
];
/** Points asked of the history API per window (the API keeps spikes when it downsamples). */
const POINTS = 600;

type Status = { kind: "loading" } | { kind: "ready" } | { kind: "error"; message: string };

/** The chart with its window and device selects. */
export default function VramHistory({ source, limits, maxSeconds }: VramHistoryProps) {
  const windows = WINDOWS.filter((w) => w.seconds <= maxSeconds);
  if (windows.length === 0) windows.push({ seconds: maxSeconds, label: `Last ${maxSeconds} s` });
  const [seconds, setSeconds] = useState(windows[0].seconds);
  const [deviceIndex, setDeviceIndex] = useState(0);
  const [status, setStatus] = useState<Status>({ kind: "loading" });
  const [attempt, setAttempt] = useState(0);
  const [theme, setTheme] = useState(0);
  const [drawnIn, setDrawnIn] = useState<"light" | "dark" | null>(null);
  const canvas = useRef<HTMLDivElement>(null);
  const devices = liveReport.value?.devices ?? [];

  // The chart takes its colors from the theme when created: a theme change redraws it.
  useEffect(() => {
    const query = matchMedia("(prefers-color-scheme: dark)");
    const onChange = () => setTheme((n) => n + 1);
    query.addEventListener("change", onChange);
    return () => query.removeEventListener("change", onChange);
  }, []);

  useEffect(() => {
    if (source === "none") return;
    let cancelled = false;
    let stop = () => {};
    setStatus({ kind: "loading" });
    (async () => {
      const response = await fetch(
        `/api/v1/hardware/vram/history?seconds=${seconds}&points=${POINTS}`,
      );
      if (!response.ok) throw new Error(`the history API answered HTTP ${response.status}`);
      const { samples } = await response.json() as { samples: VramSample[] };
      if (cancelled || !canvas.current) return;
      const chart = new VramChart(canvas.current, samples, {
        deviceIndex,
        seconds,
        limits,
        report: liveReport.peek(),
      });
      chart.setEvents(timelineEvents.peek());
      const unsubscribe = [
        liveReport.subscribe((report) => report && chart.append(report)),
        timelineEvents.subscribe((events) => chart.setEvents(events)),
      ];
      // Nothing arrives while nothing changes: keep the time axis moving.
      const tick = setInterval(() => {
        if (linkState.peek() === "live") chart.extendTo(Date.now());
      }, 5000);
      stop = () => {
        clearInterval(tick);
        for (const off of unsubscribe) off();
        chart.destroy();
      };
      setDrawnIn(matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
      setStatus({ kind: "ready" });
    })().catch((error) => {
      if (!cancelled) setStatus({ kind: "error", message: (error as Error).message });
    });
    return () => {
      cancelled = true;
      stop();
    };
  }, [source, seconds, deviceIndex, attempt, theme]);

  return (
    <div
      class="history"
      data-status={source === "none" ? "none" : status.kind}
      data-theme={drawnIn ?? undefined}
      data-marks={timelineEvents.value.length}
    >
      <div class="panel-head">
        <h2 id="history-title">Memory over time</h2>
        <div class="panel-tools">
          {devices.length > 1 && (
            <label>
              Device{" "}
              <select
                value={deviceIndex}
                onChange={(e) => setDeviceIndex(Number(e.currentTarget.value))}
              >
                {devices.map((d) => (
                  <option key={d.index} value={d.index}>GPU {d.index} · {d.name}</option>
                ))}
              </select>
            </label>
          )}
          <label>
            <span class="visually-hidden">Time window</span>
            <select
              value={seconds}
              disabled={source === "none"}
              onChange={(e) => setSeconds(Number(e.currentTarget.value))}
            >
              {windows.map((w) => <option key={w.seconds} value={w.seconds}>{w.label}</option>)}
            </select>
          </label>
        </div>
      </div>
      {source === "none"
        ? <p class="panel-msg">No GPU: there is no memory to chart.</p>
        : status.kind === "loading"
        ? <p class="panel-msg" aria-busy="true">Loading history…</p>
        : status.kind === "error"
        ? (
          <p class="panel-msg panel-error" role="alert">
            Cannot load the history: {status.message}.{" "}
            <button type="button" onClick={() => setAttempt(attempt + 1)}>Retry</button>
          </p>
        )
        : null}
      <div class="chart" ref={canvas} />
    </div>
  );
}

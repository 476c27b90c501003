/**
 * The dashboard's live VRAM feed, shared by every island on the page (one stream, not
 * one per island). It follows `GET /api/v1/hardware/vram/stream`; when the stream drops
 * it reconnects with backoff and meanwhile polls `GET /api/v1/hardware/vram` every 3 s,
 * and says the data is stale. Nothing runs until an island calls {@link connectLive}
 * (in an effect, so never during server rendering). A page opened with `?settle` shows the
 * report it was rendered with and opens no stream: a headless screenshot
 * (`chromium --headless --screenshot --virtual-time-budget=…`) waits for the network to
 * go quiet, which a live stream never does.
 * @module
 */
import { signal } from "@preact/signals";
import type { VramReport } from "../core/types.ts";
import { feedEvents } from "./live_events.ts";

/**
 * Where the report stream stands: live, down (data stale) and reconnecting, the server
 * said it is stopping (until it is back), or a still page (`?settle`: no stream).
 */
export type LinkState = "connecting" | "live" | "stale" | "stopped" | "still";

/** The query parameter that makes the page a still picture (no live stream). */
export const SETTLE_PARAM = "settle";

/** True when the page's URL asks it to settle (`/?settle`); false outside a browser. */
export function settleRequested(search: string = globalThis.location?.search ?? ""): boolean {
  return new URLSearchParams(search).has(SETTLE_PARAM);
}

/** A moment worth marking on the history chart's time axis (evictions, loads, OOMs…). */
export interface TimelineEvent {
  /** Milliseconds since the epoch. */
  at: number;
  kind: string;
  message: string;
}

/** The stream's URL. */
export const STREAM_URL = "/api/v1/hardware/vram/stream";
/** The polled URL while the stream is down. */
export const REPORT_URL = "/api/v1/hardware/vram";
/** Poll interval while the stream is down. */
export const POLL_MS = 3000;
/** No event (a snapshot or a heartbeat every 15 s) for this long means the stream is dead. */
export const SILENCE_MS = 40_000;

/** The latest report (null until the first one arrives; islands start from their props). */
export const liveReport = signal<VramReport | null>(null);
/** The stream's state. */
export const linkState = signal<LinkState>("connecting");
/** When the latest data arrived (ms since the epoch), from the stream or a poll. */
export const dataReceivedAt = signal<number>(0);
/** Why the stream or the last poll failed, while stale. */
export const linkError = signal<string | null>(null);
/** A clock that ticks each second while stale, so ages on screen move. */
export const clock = signal<number>(Date.now());

/**
 * The events hook: marks the history chart draws on its time axis. Push to it (e.g.
 * from an event-log island or an `event: pipeline` SSE event) and the chart redraws.
 */
export const timelineEvents = signal<TimelineEvent[]>([]);

/** Event kinds marked on the chart's time axis. */
export const MARKED_KINDS: ReadonlySet<string> = new Set(["eviction", "oom"]);

/** Adds an event to the chart's timeline (keeps the latest 500). */
export function pushTimelineEvent(event: TimelineEvent): void {
  timelineEvents.value = [...timelineEvents.value.slice(-499), event];
}

let users = 0;
let source: EventSource | null = null;
let attempt = 0;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let pollTimer: ReturnType<typeof setInterval> | undefined;
let silenceTimer: ReturnType<typeof setTimeout> | undefined;
let clockTimer: ReturnType<typeof setInterval> | undefined;

function accept(report: VramReport) {
  // New events first, so a table reacting to the report sees the log that explains it.
  const fresh = feedEvents(report.events).filter((e) => MARKED_KINDS.has(e.kind));
  if (fresh.length > 0) {
    timelineEvents.value = [
      ...timelineEvents.value.slice(-(500 - fresh.length)),
      ...fresh.map((e) => ({ at: e.at, kind: e.kind, message: e.message })),
    ];
  }
  liveReport.value = report;
  dataReceivedAt.value = Date.now();
}

function armSilenceWatch() {
  clearTimeout(silenceTimer);
  silenceTimer = setTimeout(() => drop("no event for 40 s"), SILENCE_MS);
}

function open() {
  retryTimer = undefined;
  const stream = new EventSource(STREAM_URL);
  source = stream;
  armSilenceWatch();
  stream.addEventListener("snapshot", (event) => {
    accept(JSON.parse((event as MessageEvent<string>).data));
    if (linkState.value !== "live") goLive();
    armSilenceWatch();
  });
  stream.addEventListener("heartbeat", armSilenceWatch);
  // The server is stopping (SIGTERM): say so, and keep trying until it is back.
  stream.addEventListener("shutdown", () => drop("the server stopped", "stopped"));
  stream.addEventListener("error", () => drop("the stream dropped"));
}

function goLive() {
  attempt = 0;
  linkState.value = "live";
  linkError.value = null;
  clearInterval(pollTimer);
  clearInterval(clockTimer);
  pollTimer = clockTimer = undefined;
}

function drop(reason: string, state: "stale" | "stopped" = "stale") {
  if (source === null) return;
  source.close();
  source = null;
  clearTimeout(silenceTimer);
  // A stopped server stays "stopped" through the failed reconnects, until it is live again.
  linkState.value = linkState.value === "stopped" ? "stopped" : state;
  linkError.value = reason;
  clock.value = Date.now();
  clockTimer ??= setInterval(() => clock.value = Date.now(), 1000);
  if (pollTimer === undefined) {
    void poll();
    pollTimer = setInterval(poll, POLL_MS);
  }
  // 0.5 s, 1 s, 2 s … up to 15 s, with jitter so a restarted server is not stampeded.
  const delay = Math.min(15_000, 500 * 2 ** attempt++) * (0.8 + Math.random() * 0.4);
  retryTimer = setTimeout(open, delay);
}

async function poll() {
  try {
    const response = await fetch(REPORT_URL, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const report = await response.json() as VramReport;
    if (linkState.value !== "live") accept(report);
  } catch (error) {
    if (linkState.value === "stale" || linkState.value === "stopped") {
      linkError.value = `the service does not answer (${(error as Error).message})`;
    }
  }
}

/**
 * Starts the feed (once, however many islands ask) seeded with `initial`; returns the
 * function that releases it: the last release closes the stream and every timer.
 */
export function connectLive(initial: VramReport | null): () => void {
  if (initial && (liveReport.value === null || liveReport.value.takenAt < initial.takenAt)) {
    accept(initial);
  }
  if (settleRequested()) {
    linkState.value = "still";
    return () => {};
  }
  if (users++ === 0) open();
  return () => {
    if (--users > 0) return;
    source?.close();
    source = null;
    clearTimeout(retryTimer);
    clearTimeout(silenceTimer);
    clearInterval(pollTimer);
    clearInterval(clockTimer);
    retryTimer =
      silenceTimer =
      pollTimer =
      clockTimer =
        undefined;
    linkState.value = "connecting";
  };
}

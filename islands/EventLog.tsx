/**
 * The event log: the scheduler's decisions and the pipelines' transitions with their
 * reasons, newest first, each kind as a colored tag, with relative times and a filter
 * by kind. Fed by the shared live feed (see live_events.ts); bounded.
 * @module
 */
import { useState } from "preact/hooks";
import type { HeadroomEvent } from "../core/types.ts";
import { EVENT_LIMIT, eventLog, type LogEntry } from "../dashboard/live_events.ts";
import { linkState } from "../dashboard/live_vram.ts";
import { formatAge } from "../dashboard/vram_format.ts";
import { useClock } from "../dashboard/use_clock.ts";

/** Props of {@link EventLog}. */
export interface EventLogProps {
  /** The newest events when the page was rendered, newest first. */
  initial: HeadroomEvent[];
  /** When the page was rendered (ms since the epoch), for a clean hydration. */
  renderedAt: number;
}

type Kind = HeadroomEvent["kind"];

/** Every kind, in the order the filter lists them. */
const KINDS: readonly Kind[] = [
  "eviction",
  "oom",
  "failure",
  "recovery",
  "transition",
  "leak",
  "mismatch",
  "batch",
  "info",
];

const timeOfDay = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

function ago(ms: number): string {
  return ms < 5000 ? "just now" : `${formatAge(ms)} ago`;
}

/** The log with its kind filter. */
export default function EventLog({ initial, renderedAt }: EventLogProps) {
  const [kind, setKind] = useState<Kind | "all">("all");
  const { now, mounted } = useClock(renderedAt);
  const kept = eventLog.value;
  const entries: LogEntry[] = kept.length > 0
    ? kept
    : initial.map((event) => ({ type: "event", event }));
  const counts = new Map<Kind, number>();
  for (const entry of entries) {
    if (entry.type === "event") {
      counts.set(entry.event.kind, (counts.get(entry.event.kind) ?? 0) + 1);
    }
  }
  const shown = kind === "all"
    ? entries
    : entries.filter((entry) => entry.type === "event" && entry.event.kind === kind);
  const total = entries.length - entries.filter((e) => e.type === "gap").length;
  const stale = linkState.value === "stale" || linkState.value === "stopped";

  return (
    <div class="events" data-filter={kind}>
      <div class="panel-head">
        <h2 id="events-title">Events</h2>
        <div class="panel-tools">
          <label>
            <span class="visually-hidden">Show events of kind</span>
            <select
              value={kind}
              onChange={(e) => setKind(e.currentTarget.value as Kind | "all")}
            >
              <option value="all">All kinds ({total})</option>
              {KINDS.map((k) => (
                <option key={k} value={k} disabled={!counts.has(k) && k !== kind}>
                  {k} ({counts.get(k) ?? 0})
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      {stale && (
        <p class="panel-msg events-stale" role="status">
          The live feed is down: new events show when it reconnects.
        </p>
      )}
      {shown.length === 0
        ? (
          <p class="panel-msg">
            {entries.length === 0 ? "No events yet." : `No ${kind} events among the last ${total}.`}
          </p>
        )
        : (
          <ol class="event-list" aria-labelledby="events-title">
            {shown.map((entry) =>
              entry.type === "gap"
                ? (
                  <li key={`gap-${entry.afterSeq}`} class="event-gap">
                    {entry.missed} more event{entry.missed === 1 ? "" : "s"}{" "}
                    came between two updates and {entry.missed === 1 ? "is" : "are"} not shown
                  </li>
                )
                : (
                  <li
                    key={entry.event.seq}
                    class="event"
                    data-kind={entry.event.kind}
                    data-seq={entry.event.seq}
                  >
                    <span class={`tag tag-${entry.event.kind}`}>{entry.event.kind}</span>
                    <span class="event-msg">{entry.event.message}</span>
                    <time
                      class="event-time"
                      dateTime={new Date(entry.event.at).toISOString()}
                      title={mounted ? timeOfDay.format(entry.event.at) : undefined}
                    >
                      {ago(now - entry.event.at)}
                    </time>
                  </li>
                )
            )}
          </ol>
        )}
      {total >= EVENT_LIMIT && <p class="events-foot">Showing the newest {EVENT_LIMIT}.</p>}
    </div>
  );
}

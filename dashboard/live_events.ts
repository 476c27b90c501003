/**
 * The scheduler's event log as the page keeps it: each snapshot carries the newest 20
 * events; they are merged here by `seq` (no duplicates, newest first, bounded), a jump
 * in `seq` is kept as a visible gap, and a server restart (seq going back) starts over.
 * @module
 */
import { signal } from "@preact/signals";
import type { HeadroomEvent } from "../core/types.ts";

/** Events the page keeps (older ones drop off the end). */
export const EVENT_LIMIT = 200;

/** One line of the log: an event, or a gap where events came faster than snapshots. */
export type LogEntry =
  | { type: "event"; event: HeadroomEvent }
  | { type: "gap"; afterSeq: number; missed: number };

/** The merge of what was kept and what a snapshot brought. */
export interface MergeResult {
  entries: LogEntry[];
  /** Events not seen before, oldest first. */
  fresh: HeadroomEvent[];
}

function newestSeq(entries: LogEntry[]): number {
  for (const entry of entries) if (entry.type === "event") return entry.event.seq;
  return 0;
}

/**
 * Merges `incoming` (newest first, as the API sends them) into `entries` (newest
 * first). Pure, for tests; {@link feedEvents} is what the page calls.
 */
export function mergeEvents(
  entries: LogEntry[],
  incoming: readonly HeadroomEvent[],
  limit = EVENT_LIMIT,
): MergeResult {
  if (incoming.length === 0) return { entries, fresh: [] };
  const newestIncoming = Math.max(...incoming.map((e) => e.seq));
  let known = newestSeq(entries);
  // The server restarted: its numbering began again, so what we hold no longer lines up.
  if (newestIncoming < known) {
    entries = [];
    known = 0;
  }
  const fresh = incoming.filter((e) => e.seq > known).sort((a, b) => a.seq - b.seq);
  if (fresh.length === 0) return { entries, fresh };
  const added: LogEntry[] = [];
  let previous = known;
  for (const event of fresh) {
    if (previous > 0 && event.seq > previous + 1) {
      added.push({ type: "gap", afterSeq: previous, missed: event.seq - previous - 1 });
    }
    added.push({ type: "event", event });
    previous = event.seq;
  }
  const merged = [...added.reverse(), ...entries];
  let count = 0;
  let cut = merged.length;
  for (let i = 0; i < merged.length; i++) {
    if (merged[i].type === "event" && ++count > limit) {
      cut = i;
      break;
    }
  }
  return { entries: merged.slice(0, cut), fresh };
}

/** The log, newest first (empty until the first report reaches the page). */
export const eventLog = signal<LogEntry[]>([]);

/** Takes the events of a report into the log; returns the new ones, oldest first. */
export function feedEvents(events: readonly HeadroomEvent[] | undefined): HeadroomEvent[] {
  if (!events || events.length === 0) return [];
  const { entries, fresh } = mergeEvents(eventLog.peek(), events);
  if (fresh.length === 0) return fresh;
  eventLog.value = entries;
  return fresh;
}

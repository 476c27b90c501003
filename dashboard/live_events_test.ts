import assert from "node:assert/strict";
import type { HeadroomEvent } from "../core/types.ts";
import { type LogEntry, mergeEvents } from "./live_events.ts";

const ev = (seq: number, kind: HeadroomEvent["kind"] = "info"): HeadroomEvent =>
  ({ seq, at: 1000 * seq, kind, pipeline: null, message: `event ${seq}` }) as HeadroomEvent;
/** As a snapshot sends them: newest first. */
const snapshot = (...seqs: number[]) => seqs.map((s) => ev(s)).reverse();
const seqs = (entries: LogEntry[]) =>
  entries.map((e) => e.type === "event" ? e.event.seq : `gap${e.missed}`);

Deno.test("mergeEvents() keeps each event once, newest first", () => {
  const first = mergeEvents([], snapshot(1, 2, 3));
  assert.deepEqual(seqs(first.entries), [3, 2, 1]);
  assert.deepEqual(first.fresh.map((e) => e.seq), [1, 2, 3]);
  const second = mergeEvents(first.entries, snapshot(2, 3, 4, 5));
  assert.deepEqual(seqs(second.entries), [5, 4, 3, 2, 1]);
  assert.deepEqual(second.fresh.map((e) => e.seq), [4, 5]);
  const same = mergeEvents(second.entries, snapshot(4, 5));
  assert.equal(same.entries, second.entries);
  assert.deepEqual(same.fresh, []);
});

Deno.test("mergeEvents() marks events missed between two snapshots as a gap", () => {
  const { entries } = mergeEvents(mergeEvents([], snapshot(1, 2)).entries, snapshot(6, 7));
  assert.deepEqual(seqs(entries), [7, 6, "gap3", 2, 1]);
});

Deno.test("mergeEvents() starts over when the server restarted (seq went back)", () => {
  const before = mergeEvents([], snapshot(40, 41)).entries;
  assert.deepEqual(seqs(mergeEvents(before, snapshot(1, 2)).entries), [2, 1]);
});

Deno.test("mergeEvents() keeps at most `limit` events", () => {
  const { entries } = mergeEvents([], snapshot(1, 2, 3, 4, 5), 3);
  assert.deepEqual(seqs(entries), [5, 4, 3]);
});

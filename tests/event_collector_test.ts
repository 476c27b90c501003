// The tools' event collector (scripts/_lib/event_collector.ts): events from successive
// VRAM reports (newest first, the newest 20) counted once each, in the order they
// happened whichever poll saw them first, and a gap between two polls noticed.
import assert from "node:assert/strict";
import type { HeadroomEvent, HeadroomEventKind, VramReport } from "../core/types.ts";
import { EventCollector } from "../scripts/_lib/event_collector.ts";

/** A report holding `events` as the service sends them: newest first. */
function report(...events: Array<[number, HeadroomEventKind]>): VramReport {
  const list: HeadroomEvent[] = events.map(([seq, kind]) =>
    ({
      seq,
      at: seq * 1000,
      kind,
      pipeline: "m",
      message: `${kind} ${seq}`,
    }) as HeadroomEvent
  );
  return { events: list.sort((a, b) => b.seq - a.seq) } as unknown as VramReport;
}

Deno.test("event collector - counts each event once, kinds in the order they happened", () => {
  const before = report([1, "info"], [2, "transition"]);
  assert.equal(EventCollector.newestSeq(before), 2);
  // One poll lands between the offload's transition (3) and its eviction (4) ...
  const early = new EventCollector(2);
  early.add(report([2, "transition"], [3, "transition"]));
  early.add(report([2, "transition"], [3, "transition"], [4, "eviction"]));
  early.add(report([3, "transition"], [4, "eviction"], [5, "transition"], [6, "eviction"]));
  // ... another sees them together: the same counts, in the same order.
  const late = new EventCollector(2);
  late.add(report([3, "transition"], [4, "eviction"], [5, "transition"], [6, "eviction"]));
  for (const collector of [early, late]) {
    assert.deepEqual(Object.entries(collector.countsByKind()), [["transition", 2], [
      "eviction",
      2,
    ]]);
    assert.deepEqual(
      collector.events().map((e) => e.seq),
      [3, 4, 5, 6],
      "nothing before the start",
    );
    assert.equal(collector.missedSome, false);
  }
});

Deno.test("event collector - a report whose oldest event is past the last one seen marks a gap", () => {
  const collector = new EventCollector(0);
  collector.add(report([1, "transition"], [2, "eviction"]));
  assert.equal(collector.missedSome, false);
  collector.add(report([5, "oom"], [6, "eviction"])); // 3 and 4 went by unseen
  assert.equal(collector.missedSome, true);
  assert.deepEqual(collector.countsByKind(), { transition: 1, eviction: 2, oom: 1 });
});

// Kill -9 during profile writes: a child process records profiles in a loop and prints
// each key once KV has acknowledged it; the test kills it with SIGKILL mid-loop, reopens
// the store, and counts: every acknowledged profile must be there (lost 0), and the KV
// file must open and keep taking writes. Repeated on one file, so each round also reads
// back what the earlier kills left.
import assert from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ProfileStore } from "../core/store/profiles.ts";
import { writeArtifact } from "./fixtures/artifact.ts";
import { prng } from "../core/random.ts";

const ROOT = fromFileUrl(new URL("../", import.meta.url));
const WRITER = fromFileUrl(new URL("./fixtures/kv_writer.ts", import.meta.url));
const HEAVY = Deno.env.get("HEADROOM_HEAVY") === "1";

/** Runs the writer from index `first`, kills it with SIGKILL `killAfterMs` after it is ready; answers the acknowledged indexes. */
async function writeAndKill(
  kvPath: string,
  first: number,
  killAfterMs: number,
): Promise<{ acked: number[]; signal: string | null; code: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-write",
      "--unstable-kv",
      WRITER,
      kvPath,
      String(first),
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const acked: number[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line === "ready") {
          timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        } else if (line.startsWith("ack ")) acked.push(Number(line.slice(4)));
      }
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  const stderr = await new Response(child.stderr).text();
  const status = await child.status;
  if (status.signal !== "SIGKILL") {
    throw new Error(`the writer was not killed mid-loop (code ${status.code}): ${stderr}`);
  }
  return { acked, signal: status.signal, code: status.code };
}

Deno.test("kill -9 during profile writes - every acknowledged profile survives, the KV file reopens", async () => {
  const seed = Number(Deno.env.get("HEADROOM_SEED") ?? Date.now() % 1e9);
  const random = prng(seed);
  const dir = await Deno.makeTempDir({ prefix: "headroom-kv-crash-" });
  const kvPath = `${dir}/headroom.kv`;
  const rounds = HEAVY ? 20 : 6;
  const perRound: Array<{ killAfterMs: number; acked: number; found: number; lost: number }> = [];
  let next = 0;
  let totalAcked = 0;
  let totalFound = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const killAfterMs = 100 + Math.floor(random() * 400);
      const { acked } = await writeAndKill(kvPath, next, killAfterMs);
      assert.ok(acked.length > 0, `round ${round}: nothing was acknowledged before the kill`);
      // The parent reopens: the store must open and hold every acknowledged profile.
      const store = await ProfileStore.open(kvPath);
      try {
        let found = 0;
        const missing: number[] = [];
        for (const n of acked) {
          const device = n % 2 === 0 ? "gpu" : "cpu";
          const profile = store.get(`model-${n}`, device);
          if (profile && profile.loadMs === n) found++;
          else missing.push(n);
        }
        perRound.push({ killAfterMs, acked: acked.length, found, lost: missing.length });
        totalAcked += acked.length;
        totalFound += found;
        assert.deepEqual(
          missing,
          [],
          `seed ${seed}, round ${round}: acknowledged but lost after SIGKILL`,
        );
        // Earlier rounds' profiles are still there too, and the file keeps taking writes.
        for (const earlier of perRound.slice(0, -1)) assert.ok(earlier.found > 0);
        assert.ok(store.all().length >= totalAcked);
        const events = await store.recentEvents(5);
        assert.ok(events.length > 0, "the event log reads back");
        await store.save({
          modelId: `parent-${round}`,
          device: "gpu",
          shape: "default",
          gpuLoadBytes: round,
          gpuPeakBytes: null,
          deviceUsedDeltaBytes: null,
          rssDeltaBytes: null,
          loadMs: null,
          offloadMs: null,
          rehydrateMs: null,
          measuredAt: Date.now(),
        });
      } finally {
        store.close();
      }
      next = Math.max(...acked) + 2; // +1 may be written without its acknowledgement
    }
    const store = await ProfileStore.open(kvPath);
    try {
      for (let round = 0; round < rounds; round++) {
        assert.equal(store.get(`parent-${round}`, "gpu")?.gpuLoadBytes, round);
      }
    } finally {
      store.close();
    }
    await writeArtifact("kv_crash", {
      seed,
      rounds,
      killsSent: rounds,
      acknowledged: totalAcked,
      found: totalFound,
      lost: totalAcked - totalFound,
      perRound,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Swap thrash in exclusive mode (issue 19 item 4): two models that cannot both be loaded,
 * 200 requests alternating A, B, A, B… sent together, first come first served
 * (HEADROOM_MAX_WAIT=0) against the exclusive line (the default 2 s): switches made, time
 * until the last answer, and the longest wait.
 *
 * Two legs. `sim`: the Scheduler over the simulated GPU (tests/_sim_gpu.ts) on a fake
 * clock, with a load of 250 ms and a run of 4 ms (FACTS.md: a new session 90–420 ms, a
 * 64 MiB model's request ~4 ms), so the figures are exact for those costs. `service`: a
 * real Headroom in process (`--gpu cpu`, `--mode exclusive`), two generated 4 MiB models on
 * the CPU engine, real workers, through `POST /api/v1/pipelines/{id}/infer`: wall time on
 * this machine (noisy; compare the two runs of one leg), with the queue limit at 200. Run by `deno task bench --only
 * switch`; writes bench/ab_switch.json.
 * @module
 */
import { exclusivePair } from "../tests/_sim_gpu.ts";
import { startHeadroom } from "../server/serve_headroom.ts";
import { parseSyntheticSize, planSyntheticModel } from "../core/models/synthetic.ts";

/** One leg at one fairness limit. */
export interface SwitchRun {
  leg: "sim" | "service";
  maxWaitMs: number;
  requests: number;
  switches: number;
  totalMs: number;
  maxWaitedMs: number;
}

/** What bench/ab_switch.json holds. */
export interface SwitchBench {
  runs: SwitchRun[];
  sim: { loadMs: number; runMs: number };
  service: { size: string; engine: string };
}

const REQUESTS = 200;
const SIM = { loadMs: 250, runMs: 4 };
const SIZE = "4MiB";

async function simRun(maxWaitMs: number): Promise<SwitchRun> {
  const pair = exclusivePair(maxWaitMs, SIM);
  const start = pair.clock.now();
  for (let i = 0; i < REQUESTS; i++) pair.request(i % 2 === 0 ? "a" : "b");
  const answers = await pair.drain();
  pair.scheduler.close();
  return {
    leg: "sim",
    maxWaitMs,
    requests: REQUESTS,
    switches: pair.switches(),
    totalMs: Math.max(...answers.map((x) => x.at + x.ms)) - start,
    maxWaitedMs: Math.max(...answers.map((x) => x.ms)),
  };
}

async function serviceRun(maxWaitMs: number): Promise<SwitchRun & { engine: string }> {
  const service = await startHeadroom({
    config: { gpu: "cpu", mode: "exclusive", maxWaitMs, queueLimit: REQUESTS },
    models: [{ id: "a", source: `synthetic:${SIZE}` }, { id: "b", source: `synthetic:${SIZE}` }],
    tempPrefix: "headroom-ab-switch-",
  });
  try {
    const { width } = planSyntheticModel(parseSyntheticSize(SIZE));
    const body = JSON.stringify({
      inputs: { input: { type: "float32", dims: [1, width], data: new Array(width).fill(0.5) } },
    });
    const infer = async (id: string) => {
      const sent = performance.now();
      const response = await service.app.request(`/api/v1/pipelines/${id}/infer`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      if (response.status !== 200) {
        throw new Error(`${id}: ${response.status} ${await response.text()}`);
      }
      await response.body?.cancel();
      return performance.now() - sent;
    };
    await infer("a"); // a loaded (and its engine warm) before the clock starts
    const events = service.services.events;
    const before = events.recent(100_000).filter((e) => e.kind === "auto-switch").length;
    const start = performance.now();
    const waits = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => infer(i % 2 === 0 ? "a" : "b")),
    );
    const totalMs = performance.now() - start;
    const switches = events.recent(100_000).filter((e) => e.kind === "auto-switch").length -
      before;
    return {
      leg: "service",
      maxWaitMs,
      requests: REQUESTS,
      switches,
      totalMs: Math.round(totalMs),
      maxWaitedMs: Math.round(Math.max(...waits)),
      engine: service.services.scheduler.list().find((row) => row.engine)?.engine ?? "none",
    };
  } finally {
    await service.close();
  }
}

const runs: SwitchRun[] = [];
let engine = "none";
for (const maxWaitMs of [0, 2_000]) runs.push(await simRun(maxWaitMs));
for (const maxWaitMs of [0, 2_000]) {
  const { engine: used, ...run } = await serviceRun(maxWaitMs);
  engine = used;
  runs.push(run);
}
const report: SwitchBench = { runs, sim: SIM, service: { size: SIZE, engine } };
await Deno.writeTextFile(
  new URL("./ab_switch.json", import.meta.url),
  JSON.stringify(report, null, 2) + "\n",
);
console.log(JSON.stringify(report, null, 2));

/**
 * Runs and dynamic batching in the worker host. Every run of a pipeline waits in the
 * pipeline's list ({@link Pipeline.waiting}) and takes a turn in the pipeline's queue,
 * behind the moves queued before it (unless a turn waiting for its batch takes it as it
 * arrives: then that turn runs it, and it queues none of its own). A turn takes the best
 * waiting run (highest priority, then the earliest) and, when the pipeline batches, every
 * other waiting run that can share the session call (same inputs, element types and
 * dimensions past the first, see core/pipelines/batch.ts) up to the batch limit; the
 * inputs are concatenated along dimension 0, run once, and the outputs split back by rows
 * to each caller.
 *
 * - A turn with fewer rows than the last run answered (plus those then waiting) waits for
 *   those callers, at most as long as that run took ({@link batchWaitUntil}): clients in
 *   a loop come back at once, and full batches cost a fraction of a run per row.
 * - Each run is checked alone against the session's inputs before it joins a batch; one
 *   that does not fit runs alone and gets its own error. A batch that fails for another
 *   reason than memory runs its members one by one, so only the guilty one fails.
 * - A batch that runs out of GPU memory is split in halves (down to single runs, whose
 *   out-of-memory error goes back to the scheduler, which evicts and retries), and the
 *   pipeline's limit on the GPU is capped below it.
 * - A caller whose client leaves or whose deadline passes is answered at once: before its
 *   turn it never runs; during it, its rows are dropped. The worker is replaced as stuck
 *   only when the run outlives the deadline of every caller in it.
 * @module
 */
import type { EventLog } from "../../core/events.ts";
import type { ProfileStore } from "../../core/store/profiles.ts";
import { PRIORITIES } from "../../core/types.ts";
import type { RunInput, WireTensor, WorkerReply } from "../../core/pipelines/protocol.ts";
import { PipelineError } from "../../core/pipelines/pipeline_error.ts";
import { feedProblem } from "../../core/pipelines/feeds.ts";
import { batchShape, batchWaitUntil, concatRows, splitRows } from "../../core/pipelines/batch.ts";
import type { HostRunOptions, HostRunResult } from "../../core/placement/types.ts";
import { QueueAbortedError } from "../../core/serial_queue.ts";
import { fromWorkerError } from "./worker_errors.ts";
import { isPlaced } from "./transitions.ts";
import { batchConfigOf, type Pipeline, sessionBatches, type WaitingRun } from "./pipeline.ts";

type Tensors = Record<string, WireTensor>;

/** What the runs need of the manager. */
export interface HostRunsDeps {
  events: EventLog;
  profiles?: ProfileStore;
  /** The manager's worker call: keeps the pipeline's status, turns throws into pipeline errors. */
  call<R extends WorkerReply>(pipeline: Pipeline, send: () => Promise<R>): Promise<R>;
  /** Ends the pipeline's worker (stuck). */
  replace(pipeline: Pipeline, reason: string): void;
}

/** Queues, batches and runs every pipeline's runs. */
export class HostRuns {
  readonly #deps: HostRunsDeps;
  #seq = 0;

  constructor(deps: HostRunsDeps) {
    this.#deps = deps;
  }

  /**
   * Queues one run and answers it: when its turn comes (after the moves queued before it,
   * ahead of lower priorities), alone or in a batch.
   */
  run(pipeline: Pipeline, input: RunInput, options: HostRunOptions): Promise<HostRunResult> {
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(dropped(signal, false));
    return new Promise<HostRunResult>((resolve, reject) => {
      const onAbort = () => settle(run, () => reject(dropped(signal!, run.taken)));
      const run: WaitingRun = {
        input,
        options,
        rank: PRIORITIES.indexOf(options.priority ?? "normal"),
        seq: this.#seq++,
        afterMoves: pipeline.movesQueued,
        arrivedAt: performance.now(),
        shape: input.kind === "tensors" ? batchShape(input.tensors) : null,
        taken: false,
        settled: false,
        resolve: (result) => settle(run, () => resolve(result)),
        reject: (error) => settle(run, () => reject(error)),
      };
      const settle = (entry: WaitingRun, answer: () => void) => {
        if (entry.settled) return;
        entry.settled = true;
        signal?.removeEventListener("abort", onAbort);
        if (!entry.taken) pipeline.waiting.splice(pipeline.waiting.indexOf(entry), 1);
        answer();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      pipeline.waiting.push(run);
      pipeline.onArrival?.();
      // A turn waiting for its batch has taken it: that turn runs it. Any other run gets a
      // turn of its own, so every run queued before a move gets its turn before that move.
      if (run.taken) return;
      pipeline.queue.run(() => this.#turn(pipeline, run.afterMoves)).catch(() => {});
    });
  }

  /** One turn: the best waiting run, with what may share its session call. */
  async #turn(pipeline: Pipeline, afterMoves: number): Promise<void> {
    const eligible = () =>
      pipeline.waiting
        .filter((r) => !r.settled && r.afterMoves <= afterMoves)
        .sort((a, b) => a.rank - b.rank || a.seq - b.seq);
    const first = eligible()[0];
    if (!first) return; // an earlier turn took it in its batch
    const members = [this.#take(pipeline, first)];
    const limit = this.#limit(pipeline);
    if (limit > 1 && first.shape && this.#fits(pipeline, first)) {
      const key = first.shape.key;
      let rows = first.shape.rows;
      const fill = () => {
        for (const run of eligible()) {
          if (run.shape?.key !== key || rows + run.shape.rows > limit) continue;
          if (!this.#fits(pipeline, run)) continue;
          members.push(this.#take(pipeline, run));
          rows += run.shape.rows;
        }
      };
      fill();
      const delayMs = pipeline.model.batch?.delayMs ?? 0;
      const left = () =>
        batchWaitUntil(
          { firstArrivedAt: first.arrivedAt, rows, limit, delayMs },
          pipeline.batch.returning,
        ) - performance.now();
      await arrivals(pipeline, left, fill);
    }
    await this.#execute(pipeline, members);
  }

  #take(pipeline: Pipeline, run: WaitingRun): WaitingRun {
    run.taken = true;
    pipeline.waiting.splice(pipeline.waiting.indexOf(run), 1);
    return run;
  }

  /** Rows a run may take now: 1 without batching; the cap applies on the GPU only. */
  #limit(pipeline: Pipeline): number {
    const config = batchConfigOf(pipeline);
    if (!config || sessionBatches(pipeline) !== true) return 1;
    const cap = pipeline.state === "gpu" ? pipeline.batch.capRows ?? Infinity : Infinity;
    return Math.min(config.max, cap);
  }

  /** True when the run's tensors fit the session's inputs (else it runs alone for its own error). */
  #fits(pipeline: Pipeline, run: WaitingRun): boolean {
    const status = pipeline.client?.lastStatus;
    return run.input.kind === "tensors" && !!status &&
      feedProblem(status.inputs, run.input.tensors) === null;
  }

  /** Runs `members` as one session call (or alone), answering each. */
  async #execute(pipeline: Pipeline, taken: WaitingRun[]): Promise<void> {
    const members = taken.filter((m) => !m.settled);
    if (members.length === 0) return;
    const id = pipeline.model.id;
    const client = pipeline.client;
    if (!isPlaced(pipeline.state) || !client?.alive) {
      const error = new PipelineError(
        "not_loaded",
        `Pipeline "${id}" is ${pipeline.state}: load it before running it`,
      );
      for (const m of members) m.reject(error);
      return;
    }
    const single = members.length === 1;
    const sentAt = performance.now();
    const input: RunInput = single
      ? members[0].input
      : { kind: "tensors", tensors: concatRows(members.map((m) => tensorsOf(m))) };
    let reply: WorkerReply<"run">;
    try {
      reply = await this.#deps.call(
        pipeline,
        () => this.#guard(pipeline, members, client.run(input)),
      );
    } catch (error) {
      for (const m of members) m.reject(error);
      return;
    }
    const device = client.lastStatus.device as "gpu" | "cpu";
    if (!reply.ok) {
      if (single) {
        members[0].reject(
          fromWorkerError("run", reply.error, `Pipeline "${id}": ${reply.error.message}`),
        );
      } else if (reply.error.code === "oom") {
        this.#cap(pipeline, rowsOf(members));
        const half = Math.ceil(members.length / 2);
        await this.#execute(pipeline, members.slice(0, half));
        await this.#execute(pipeline, members.slice(half));
      } else {
        for (const m of members) await this.#execute(pipeline, [m]);
      }
      return;
    }
    // Its callers, and those already waiting, are the next turn's expected rows.
    pipeline.batch.returning = {
      rows: rowsOf(members) + rowsOf(pipeline.waiting),
      until: performance.now() + reply.ms,
    };
    if (reply.output.kind !== "tensors" || single) {
      this.#count(pipeline, members, reply.ms, device);
      const queueMs = sentAt - members[0].arrivedAt;
      members[0].resolve({ output: reply.output, ms: reply.ms, queueMs, device });
      return;
    }
    const parts = splitRows(reply.output.tensors, members.map((m) => m.shape!.rows));
    if (!parts) {
      this.#refuse(pipeline, reply.output.tensors, rowsOf(members));
      for (const m of members) await this.#execute(pipeline, [m]);
      return;
    }
    this.#count(pipeline, members, reply.ms, device);
    members.forEach((m, i) =>
      m.resolve({
        output: { kind: "tensors", tensors: parts[i] },
        ms: reply.ms,
        queueMs: sentAt - m.arrivedAt,
        device,
      })
    );
  }

  /**
   * A worker reply raced with the members' deadlines: each member answers timeout at its
   * own; the worker is replaced when the last one passes with the run still going.
   */
  #guard<R>(pipeline: Pipeline, members: WaitingRun[], reply: Promise<R>): Promise<R> {
    const deadlines = members.map((m) => m.options.deadline);
    if (deadlines.some((d) => !d)) return reply;
    let left = members.length;
    const cleanups: Array<() => void> = [];
    const stuck = new Promise<never>((_, reject) => {
      members.forEach((m, i) => {
        const deadline = deadlines[i]!;
        const onDeadline = () => {
          m.reject(deadline.reason);
          if (--left > 0) return;
          const reason = deadline.reason instanceof Error ? deadline.reason.message : "deadline";
          this.#deps.replace(pipeline, `stuck past the request timeout (${reason})`);
          reject(deadline.reason);
        };
        if (deadline.aborted) return onDeadline();
        deadline.addEventListener("abort", onDeadline, { once: true });
        cleanups.push(() => deadline.removeEventListener("abort", onDeadline));
      });
    });
    stuck.catch(() => {});
    return Promise.race([reply, stuck]).finally(() => cleanups.forEach((c) => c()));
  }

  /** Counts a run that answered; a new largest batch is news (with the peak the budget then uses). */
  #count(pipeline: Pipeline, members: WaitingRun[], ms: number, device: "gpu" | "cpu"): void {
    if (!batchConfigOf(pipeline)) return;
    const rows = rowsOf(members);
    const counts = pipeline.batch;
    counts.runs++;
    counts.rows += rows;
    counts.runsByRows.set(rows, (counts.runsByRows.get(rows) ?? 0) + 1);
    if (rows <= counts.largestRows || rows === 1) {
      counts.largestRows = Math.max(counts.largestRows, rows);
      return;
    }
    counts.largestRows = rows;
    const peak = device === "gpu" ? pipeline.client?.lastStatus.gpuPeakBytes ?? 0 : 0;
    if (peak > 0) this.#deps.profiles?.notePeak(pipeline.model.id, peak).catch(() => {});
    this.#deps.events.emit({
      kind: "batch",
      reason: "largest",
      pipeline: pipeline.model.id,
      rows,
      ms,
      gpuPeakBytes: peak,
      message:
        `${pipeline.model.id} ran a batch of ${rows} rows on the ${device.toUpperCase()} in ${
          ms.toFixed(1)
        } ms (${members.length} requests)`,
    });
  }

  /** Caps the GPU limit below a batch size that ran out of memory, and says so. */
  #cap(pipeline: Pipeline, rows: number): void {
    const capRows = Math.max(1, Math.floor(rows / 2));
    if (pipeline.batch.capRows !== null && pipeline.batch.capRows <= capRows) return;
    pipeline.batch.capRows = capRows;
    this.#deps.events.emit({
      kind: "batch",
      reason: "capped",
      pipeline: pipeline.model.id,
      rows,
      ms: 0,
      gpuPeakBytes: pipeline.client?.lastStatus.gpuPeakBytes ?? 0,
      capRows,
      message: `${pipeline.model.id}: a batch of ${rows} rows ran out of GPU memory; ` +
        `batches on the GPU are capped at ${capRows} rows (split and retried)`,
    });
  }

  /** Stops batching a model whose outputs do not follow its inputs' first dimension. */
  #refuse(pipeline: Pipeline, outputs: Tensors, rows: number): void {
    const shapes = Object.entries(outputs).map(([n, t]) => `${n} [${t.dims.join(", ")}]`);
    pipeline.batch.refused = `a batch of ${rows} rows gave outputs ${shapes.join(", ")}`;
    this.#deps.events.emit({
      kind: "info",
      pipeline: pipeline.model.id,
      message: `${pipeline.model.id}: its first dimension is not a batch dimension ` +
        `(${pipeline.batch.refused}); it runs each request alone (set "batch": false to say so)`,
    });
  }
}

/** The rejection of a run whose client left (or whose deadline passed) before it was answered. */
function dropped(signal: AbortSignal, taken: boolean): QueueAbortedError {
  const why = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new QueueAbortedError(`${taken ? "left its batch" : "dropped from the queue"}: ${why}`);
}

function tensorsOf(run: WaitingRun): Tensors {
  return (run.input as Extract<RunInput, { kind: "tensors" }>).tensors;
}

function rowsOf(members: WaitingRun[]): number {
  return members.reduce((sum, m) => sum + (m.shape?.rows ?? 1), 0);
}

/**
 * Resolves once `left()` (ms the turn still waits) is 0 or less: checked after each run
 * that arrives on `pipeline` (once `fill` has taken it) and when the wait runs out. One
 * timer for the whole wait, not one per arrival: 16 callers coming back make 15 arrivals.
 */
function arrivals(pipeline: Pipeline, left: () => number, fill: () => void): Promise<void> {
  if (left() <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      if (pipeline.onArrival === onArrival) pipeline.onArrival = null;
      resolve();
    };
    const onArrival = () => {
      fill(); // into this batch now: taken, the arrival queues no turn of its own
      if (left() <= 0) finish();
    };
    const onTimer = () => {
      fill();
      const ms = left();
      if (ms <= 0) finish();
      else timer = setTimeout(onTimer, ms);
    };
    let timer = setTimeout(onTimer, left());
    pipeline.onArrival = onArrival;
  });
}

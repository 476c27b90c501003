/**
 * What the requests of each model did, as Triton's per-model inference metrics count
 * them: requests by outcome, and for each request that answered how long it took in all,
 * how long it waited in its pipeline's queue, and how long its session call ran. The
 * scheduler records one entry per request (`Scheduler.run`, every route's way in);
 * `/metrics` exports them (server/metrics/exposition.ts).
 * @module
 */
import { Histogram } from "./histogram.ts";
import type { PipelineErrorCode } from "./pipelines/pipeline_error.ts";

/** Bucket bounds (seconds) for one request: a fraction of a millisecond to a minute. */
export const REQUEST_BUCKETS_S: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/** How a request ended: answered, or the code of the error it got ("internal" for any other). */
export type RequestOutcome = "success" | PipelineErrorCode | "internal";

/** The three times of an answered request, in milliseconds. */
export interface AnsweredTimes {
  /** From its arrival at the scheduler to its answer. */
  totalMs: number;
  /** In its pipeline's queue on the host: behind other runs and moves, and its batch filling. */
  queueMs: number;
  /** The session call that carried it (alone or in a batch), as the engine timed it. */
  computeMs: number;
}

/** Requests by model and outcome, and the durations of those answered. */
export class RequestFigures {
  /** Requests by model, then by outcome. */
  readonly outcomes = new Map<string, Map<RequestOutcome, number>>();
  readonly totalSeconds = new Histogram(REQUEST_BUCKETS_S);
  readonly queueSeconds = new Histogram(REQUEST_BUCKETS_S);
  readonly computeSeconds = new Histogram(REQUEST_BUCKETS_S);

  /** Counts an answered request of `model` and its times. */
  answered(model: string, times: AnsweredTimes): void {
    this.#count(model, "success");
    const labels = { model };
    this.totalSeconds.observe(times.totalMs / 1000, labels);
    this.queueSeconds.observe(times.queueMs / 1000, labels);
    this.computeSeconds.observe(times.computeMs / 1000, labels);
  }

  /** Counts a request of `model` that ended with an error. */
  failed(model: string, outcome: Exclude<RequestOutcome, "success">): void {
    this.#count(model, outcome);
  }

  #count(model: string, outcome: RequestOutcome): void {
    let byOutcome = this.outcomes.get(model);
    if (!byOutcome) this.outcomes.set(model, byOutcome = new Map());
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
  }
}

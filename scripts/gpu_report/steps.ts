/**
 * The GPU report's step runner: each step has a time limit, its outcome (ran, skipped,
 * failed, timed out) and why, its figures, and a progress line on stderr as it goes. A
 * step past its limit is abandoned (its promise may still settle later) and the report
 * goes on; a step whose limit does not fit in the time left is skipped.
 * @module
 */

/** What became of one step. */
export type StepStatus = "ran" | "skipped" | "failed" | "timed out";

/** One step as the report records it. */
export interface StepRecord {
  name: string;
  status: StepStatus;
  /** Why it was skipped or failed, or a note on how it ran ("on the driver double…"). */
  reason: string | null;
  limitMs: number;
  ms: number;
  /** The step's figures (free-form, written to the JSON as they are). */
  figures: Record<string, unknown>;
}

/** Thrown by a step to say it does not apply here: recorded as skipped with the message. */
export class SkipStep extends Error {
  override name = "SkipStep";
}

/** Runs steps in order within an overall deadline and keeps their records. */
export class StepRunner {
  readonly records: StepRecord[] = [];
  #deadline: number;
  #total: number;

  /** `budgetMs`: the whole report's time; `total`: how many steps, for the progress lines. */
  constructor(budgetMs: number, total: number) {
    this.#deadline = performance.now() + budgetMs;
    this.#total = total;
  }

  /** Milliseconds left of the report's budget. */
  get leftMs(): number {
    return Math.max(0, this.#deadline - performance.now());
  }

  /**
   * Runs `fn` with at most `limitMs`; `fn` fills `figures` as it goes, so a step that
   * times out or fails keeps what it measured before. Returns the record.
   */
  async step(
    name: string,
    limitMs: number,
    fn: (figures: Record<string, unknown>) => Promise<string | void>,
  ): Promise<StepRecord> {
    const figures: Record<string, unknown> = {};
    const record: StepRecord = {
      name,
      status: "ran",
      reason: null,
      limitMs: Math.round(limitMs),
      ms: 0,
      figures,
    };
    this.records.push(record);
    const label = `[${this.records.length}/${this.#total}] ${name}`;
    if (limitMs > this.leftMs) {
      record.status = "skipped";
      record.reason = `needs up to ${secs(limitMs)}, ${secs(this.leftMs)} of the report's ` +
        "budget left (raise --budget)";
      console.error(`${label}: skipped (${record.reason})`);
      return record;
    }
    console.error(`${label} (limit ${secs(limitMs)}) …`);
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), limitMs);
    });
    try {
      const outcome = await Promise.race([fn(figures), limit]);
      if (outcome === "timeout") {
        record.status = "timed out";
        record.reason = `still running after its limit of ${secs(limitMs)}`;
      } else if (typeof outcome === "string") {
        record.reason = outcome;
      }
    } catch (error) {
      record.status = error instanceof SkipStep ? "skipped" : "failed";
      record.reason = error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
    record.ms = Math.round(performance.now() - started);
    console.error(
      `${label}: ${record.status} in ${secs(record.ms)}${
        record.reason ? ` (${record.reason})` : ""
      }`,
    );
    return record;
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A test load as the page follows it: `POST /api/v1/models/test-load` streams NDJSON
 * progress (`started`, `measured`, `error` per model, then `done`); each event moves the
 * run's state here, which marks each row (queued, spinning, ✓ with the figures, ✗ with the
 * error) and the panel (progress, summary, or why it failed). The rows' figures come
 * from the live stream, like every other change of a model.
 * @module
 */
import { type Signal, signal } from "@preact/signals";
import type { LoadMeasurement, TestLoadEvent } from "../core/placement/types.ts";
import { ApiError } from "../api_client/mod.ts";
import { apiPost } from "./page_api.ts";
import { readNdjson } from "../api_client/ndjson.ts";
import { formatMs } from "./pipeline_view.ts";
import { formatBytes } from "./vram_format.ts";

/** A test load's progress on one row. */
export type RowRun =
  | { phase: "queued" }
  | { phase: "running" }
  | { phase: "ok"; text: string }
  | { phase: "error"; message: string };

/** A test load's state: running or not, each row's mark, progress, and how it ended. */
export interface TestRun {
  running: boolean;
  /** Model id → its mark. */
  rows: Readonly<Record<string, RowRun>>;
  /** The model being measured, counted from 1. */
  current: number;
  total: number;
  done: Omit<Extract<TestLoadEvent, { event: "done" }>, "event"> | null;
  error: string | null;
}

/** No test load ran (or its result was dismissed). */
export const IDLE_RUN: TestRun = {
  running: false,
  rows: {},
  current: 0,
  total: 0,
  done: null,
  error: null,
};

/** What a row's ✓ says: "GPU: 1.0 s, VRAM 4.02 MiB, RAM 16.0 MiB". */
export function measuredText(m: LoadMeasurement): string {
  return `${m.placement.toUpperCase()}: ${formatMs(m.ms)}` +
    (m.placement === "gpu" ? `, VRAM ${formatBytes(m.vramBytes)}` : "") +
    `, RAM ${formatBytes(Math.max(0, m.ramBytes))}`;
}

/** The run after `event`. Pure, for tests. */
export function stepRun(run: TestRun, event: TestLoadEvent): TestRun {
  switch (event.event) {
    case "started":
      return {
        ...run,
        current: event.index + 1,
        total: event.total,
        rows: { ...run.rows, [event.model]: { phase: "running" } },
      };
    case "measured":
      return {
        ...run,
        rows: {
          ...run.rows,
          [event.model]: { phase: "ok", text: measuredText(event.measurement) },
        },
      };
    case "error":
      return {
        ...run,
        rows: { ...run.rows, [event.model]: { phase: "error", message: event.message } },
      };
    case "done":
      return { ...run, running: false, done: event };
  }
}

/** The run stopped by `error` (null message: the person cancelled the token form). */
function failed(run: TestRun, error: unknown): TestRun {
  const message = error instanceof ApiError && error.status === 409
    ? "A test load is already running: wait for it to finish."
    : error instanceof ApiError && error.code === "cancelled"
    ? null
    : `Test load failed: ${(error as Error).message}`;
  return {
    ...run,
    running: false,
    error: message,
    // Rows that never got their turn lose their mark; measured ones keep theirs.
    rows: Object.fromEntries(
      Object.entries(run.rows).filter(([, row]) => row.phase === "ok" || row.phase === "error"),
    ),
  };
}

/** One panel's test load: its run, and whether it asks for confirmation. */
export class TestLoad {
  /** The run (IDLE_RUN before any). */
  readonly run: Signal<TestRun> = signal(IDLE_RUN);
  /** True while the panel asks whether to unload the loaded models for a run. */
  readonly confirming: Signal<boolean> = signal(false);

  /** How the panel shows the run: `data-test-load` of the table. */
  get phase(): "running" | "done" | "error" | "idle" {
    const run = this.run.value;
    return run.running ? "running" : run.done ? "done" : run.error ? "error" : "idle";
  }

  /** Runs a test load of every model (`ids` are marked queued) and follows its progress. */
  async start(ids: readonly string[]): Promise<void> {
    this.confirming.value = false;
    this.run.value = {
      ...IDLE_RUN,
      running: true,
      total: ids.length,
      rows: Object.fromEntries(ids.map((id) => [id, { phase: "queued" }])),
    };
    try {
      const response = await apiPost("/api/v1/models/test-load", {});
      await readNdjson<TestLoadEvent>(response, (event) => {
        this.run.value = stepRun(this.run.peek(), event);
      });
      const run = this.run.peek();
      if (run.running) this.run.value = { ...run, running: false, error: "the stream ended early" };
    } catch (error) {
      this.run.value = failed(this.run.peek(), error);
    }
  }

  /** Clears a finished run's summary and marks. */
  dismiss(): void {
    this.run.value = IDLE_RUN;
  }
}

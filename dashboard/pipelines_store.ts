/**
 * The pipelines table's state: every model's row as the server last sent it, fed by one
 * row shape ({@link ModelRow}) from wherever it comes — the page's first render, each
 * snapshot of the live stream (its `models`), an action's answer, or `GET /api/v1/models`
 * when the page had none. A row replaces the one held unless it was taken earlier (the
 * server's `takenAt`), so a snapshot that left before an action's answer cannot undo it.
 * Also which rows wait on an action, and why an action failed.
 * @module
 */
import { effect, type ReadonlySignal, type Signal, signal } from "@preact/signals";
import type { ModelAction, ModelRow, VramReport } from "../core/types.ts";
import { ApiError } from "../api_client/mod.ts";
import { apiGet, apiPost } from "./page_api.ts";

/** A row, and when it arrived here (the browser's clock, for idle times and countdowns). */
export interface HeldRow {
  row: ModelRow;
  receivedAt: number;
}

/** Whether the rows are there, being fetched, or could not be fetched (with why). */
export type FetchState = { kind: "ok" } | { kind: "loading" } | { kind: "error"; message: string };

/** What each action posts, and what the row says while it runs. */
export const ACTION_REQUESTS: Readonly<
  Record<ModelAction, { path: string; body?: unknown; doing: string }>
> = {
  "load-gpu": { path: "load", body: { device: "gpu" }, doing: "Loading on the GPU" },
  "load-cpu": { path: "load", body: { device: "cpu" }, doing: "Loading on the CPU" },
  offload: { path: "offload", doing: "Offloading" },
  unload: { path: "unload", doing: "Unloading" },
  pin: { path: "pin", doing: "Pinning" },
  unpin: { path: "unpin", doing: "Unpinning" },
};

/**
 * `held` with `incoming` taken in: each incoming row replaces the held row of its model
 * unless that one was taken later; rows of models not held yet are added at the end.
 * Returns `held` itself when nothing changed.
 */
export function mergeRows(
  held: readonly HeldRow[],
  incoming: readonly ModelRow[],
  receivedAt: number,
): readonly HeldRow[] {
  const byId = new Map(incoming.map((row) => [row.id, row]));
  let changed = false;
  const next = held.map((entry) => {
    const row = byId.get(entry.row.id);
    if (row === undefined) return entry;
    byId.delete(entry.row.id);
    if (row.takenAt < entry.row.takenAt) return entry;
    changed = true;
    return { row, receivedAt };
  });
  for (const row of byId.values()) {
    next.push({ row, receivedAt });
    changed = true;
  }
  return changed ? next : held;
}

function without(record: Readonly<Record<string, string>>, key: string) {
  const { [key]: _, ...rest } = record;
  return rest;
}

/** One table's rows and actions (one per island instance: the server renders many pages). */
export class PipelinesStore {
  /** The rows, in catalog order. */
  readonly rows: Signal<readonly HeldRow[]>;
  /** Whether the rows are there (the page's render had none when not "ok"). */
  readonly fetchState: Signal<FetchState>;
  /** Model id → what its running action is doing ("Unloading"). */
  readonly busy: Signal<Readonly<Record<string, string>>> = signal({});
  /** Model id → why its last action failed. */
  readonly errors: Signal<Readonly<Record<string, string>>> = signal({});

  /** Starts from the page's rows (null: none could be listed; call {@link fetch}). */
  constructor(initial: readonly ModelRow[] | null, receivedAt: number = Date.now()) {
    this.rows = signal(mergeRows([], initial ?? [], receivedAt));
    this.fetchState = signal(initial ? { kind: "ok" } : { kind: "loading" });
  }

  /** Takes in rows from any source (see {@link mergeRows}). */
  accept(rows: readonly ModelRow[], receivedAt: number = Date.now()): void {
    this.rows.value = mergeRows(this.rows.peek(), rows, receivedAt);
  }

  /** Takes in the rows of every report `live` brings; returns the function that stops. */
  follow(live: ReadonlySignal<VramReport | null>): () => void {
    return effect(() => {
      const models = live.value?.models;
      if (models) this.accept(models);
    });
  }

  /** Fetches every row (`GET /api/v1/models`): when the page had none, and on Retry. */
  async fetch(): Promise<void> {
    try {
      const { models } = await apiGet<{ models: ModelRow[] }>("/api/v1/models");
      this.accept(models);
      this.fetchState.value = { kind: "ok" };
    } catch (error) {
      this.fetchState.value = { kind: "error", message: (error as Error).message };
    }
  }

  /** Runs `action` on model `id`: the row says what it does meanwhile, then takes the answer. */
  async act(id: string, action: ModelAction): Promise<void> {
    const { path, body, doing } = ACTION_REQUESTS[action];
    this.busy.value = { ...this.busy.peek(), [id]: doing };
    this.errors.value = without(this.errors.peek(), id);
    try {
      const response = await apiPost(`/api/v1/models/${encodeURIComponent(id)}/${path}`, body);
      this.accept([await response.json() as ModelRow]);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "cancelled")) {
        this.errors.value = {
          ...this.errors.peek(),
          [id]: `${doing} failed: ${(error as Error).message}`,
        };
      }
    } finally {
      this.busy.value = without(this.busy.peek(), id);
    }
  }
}

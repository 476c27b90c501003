/**
 * The pipelines table: every catalog model with its placement dot, state, VRAM and RAM
 * (live while loaded, last-known in gray italic while unloaded, "—" before any load),
 * idle time, flags (pinned, leak, GPU/CPU mismatch, error) and its actions; plus the
 * Test Load button, which measures every model in turn and updates each row from the
 * streamed progress. Live: snapshots of the shared feed patch the rows; a pipeline
 * event refetches the catalog.
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { ModelReport } from "../core/types.ts";
import type { TestLoadEvent } from "../core/placement/measurements.ts";
import { dataReceivedAt, liveReport } from "../components/live_vram.ts";
import { pipelineChanges } from "../components/live_events.ts";
import { ApiError, apiGet, apiPost, tokenPrompt } from "../components/api_client.ts";
import { readNdjson } from "../components/ndjson.ts";
import {
  type Activity,
  applyMeasurement,
  applySnapshot,
  type Figure,
  formatMs,
  mismatchText,
  rowView,
} from "../components/pipeline_view.ts";
import { useClock } from "../components/use_clock.ts";
import { formatBytes } from "../components/vram_format.ts";
import { TokenForm } from "../components/TokenForm.tsx";

/** Props of {@link PipelinesTable}. */
export interface PipelinesTableProps {
  /** The catalog when the page was rendered (null: it could not be read; fetched here). */
  initial: ModelReport[] | null;
  /** Whether a GPU is in use (else only CPU loads are offered). */
  gpu: boolean;
  /** When the page was rendered (ms since the epoch), for a clean hydration. */
  renderedAt: number;
}

/** A model as held here, and when it was received (a later snapshot overrides its state). */
interface Held {
  model: ModelReport;
  at: number;
}

type Fetch = { kind: "ok" } | { kind: "loading" } | { kind: "error"; message: string };

/** A test load's progress on one row. */
type RowRun =
  | { phase: "queued" }
  | { phase: "running" }
  | { phase: "ok"; text: string }
  | { phase: "error"; message: string };

interface TestRun {
  running: boolean;
  rows: Record<string, RowRun>;
  current: number;
  total: number;
  done: { total: number; failed: number; ms: number } | null;
  error: string | null;
}

const IDLE_RUN: TestRun = {
  running: false,
  rows: {},
  current: 0,
  total: 0,
  done: null,
  error: null,
};

type Action = "gpu" | "cpu" | "offload" | "unload" | "pin" | "unpin";

const ACTIONS: Record<Action, { path: string; body?: unknown; doing: string }> = {
  gpu: { path: "load", body: { device: "gpu" }, doing: "Loading on the GPU" },
  cpu: { path: "load", body: { device: "cpu" }, doing: "Loading on the CPU" },
  offload: { path: "offload", doing: "Offloading" },
  unload: { path: "unload", doing: "Unloading" },
  pin: { path: "pin", doing: "Pinning" },
  unpin: { path: "unpin", doing: "Unpinning" },
};

/** Catalog refetches are folded: one per burst of events. */
const REFETCH_DELAY_MS = 150;

function FigureCell({ figure, name }: { figure: Figure; name: string }) {
  return (
    <td class={`num fig fig-${figure.kind}`} data-col={name} title={figure.title}>
      {figure.text}
    </td>
  );
}

function Flag(
  { kind, label, tip }: { kind: string; label: string; tip: string },
) {
  return (
    <span class={`flag flag-${kind}`} tabIndex={0} data-tip={tip} aria-label={`${label}: ${tip}`}>
      {label}
    </span>
  );
}

function RunMark({ run }: { run: RowRun | undefined }) {
  if (!run) return null;
  if (run.phase === "queued") return <span class="run run-queued">queued</span>;
  if (run.phase === "running") {
    return (
      <span class="run run-running" role="status">
        <span class="spinner" aria-hidden="true" />
        <span class="visually-hidden">measuring</span>
      </span>
    );
  }
  if (run.phase === "ok") {
    return (
      <span
        class="run run-ok"
        tabIndex={0}
        data-tip={run.text}
        aria-label={`measured: ${run.text}`}
      >
        ✓
      </span>
    );
  }
  return (
    <span
      class="run run-error"
      tabIndex={0}
      data-tip={run.message}
      aria-label={`failed: ${run.message}`}
    >
      ✗ <span class="run-error-text">{run.message}</span>
    </span>
  );
}

/** The table with its Test Load button. */
export default function PipelinesTable({ initial, gpu, renderedAt }: PipelinesTableProps) {
  const [held, setHeld] = useState<Held[]>(() =>
    (initial ?? []).map((model) => ({ model, at: 0 }))
  );
  const [fetchState, setFetchState] = useState<Fetch>(
    initial ? { kind: "ok" } : { kind: "loading" },
  );
  const [busy, setBusy] = useState<Record<string, string>>({});
  const [rowErrors, setRowErrors] = useState<Record<string, string>>({});
  const [run, setRun] = useState<TestRun>(IDLE_RUN);
  const [confirming, setConfirming] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const { now, mounted } = useClock(renderedAt);
  const changes = pipelineChanges.value;
  const firstChanges = useRef(changes);
  const report = liveReport.value;
  const reportAt = dataReceivedAt.value;
  const prompt = tokenPrompt.value;
  const gpuUsable = report ? report.source !== "none" : gpu;

  const upsert = (models: ModelReport[], at: number) =>
    setHeld((rows) => {
      const byId = new Map(models.map((m) => [m.id, m]));
      const next = rows.map((row) => {
        const model = byId.get(row.model.id);
        byId.delete(row.model.id);
        return model ? { model, at } : row;
      });
      for (const model of byId.values()) next.push({ model, at });
      return next;
    });

  // Refetch the catalog after pipeline events (folded), on retry, and when there is none.
  useEffect(() => {
    if (changes === firstChanges.current && attempt === 0 && initial) return;
    let cancelled = false;
    const timer = setTimeout(async () => {
      try {
        const { models } = await apiGet<{ models: ModelReport[] }>("/api/v1/models");
        if (cancelled) return;
        upsert(models, Date.now());
        setFetchState({ kind: "ok" });
      } catch (error) {
        if (!cancelled) setFetchState({ kind: "error", message: (error as Error).message });
      }
    }, attempt > 0 || !initial ? 0 : REFETCH_DELAY_MS);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [changes, attempt]);

  const act = async (id: string, action: Action) => {
    const { path, body, doing } = ACTIONS[action];
    setBusy((b) => ({ ...b, [id]: doing }));
    setRowErrors(({ [id]: _, ...rest }) => rest);
    try {
      const response = await apiPost(`/api/v1/models/${encodeURIComponent(id)}/${path}`, body);
      upsert([await response.json() as ModelReport], Date.now());
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "cancelled")) {
        setRowErrors((e) => ({ ...e, [id]: `${doing} failed: ${(error as Error).message}` }));
      }
    } finally {
      setBusy(({ [id]: _, ...rest }) => rest);
    }
  };

  const onTestEvent = (event: TestLoadEvent) => {
    if (event.event === "started") {
      setRun((r) => ({
        ...r,
        current: event.index + 1,
        total: event.total,
        rows: { ...r.rows, [event.model]: { phase: "running" } },
      }));
    } else if (event.event === "measured") {
      const m = event.measurement;
      const text = `${m.placement.toUpperCase()}: ${formatMs(m.ms)}` +
        (m.placement === "gpu" ? `, VRAM ${formatBytes(m.vramBytes)}` : "") +
        `, RAM ${formatBytes(Math.max(0, m.ramBytes))}`;
      const at = Date.now();
      setHeld((rows) =>
        rows.map((row) =>
          row.model.id === event.model ? { ...row, model: applyMeasurement(row.model, m, at) } : row
        )
      );
      setRun((r) => ({ ...r, rows: { ...r.rows, [event.model]: { phase: "ok", text } } }));
    } else if (event.event === "error") {
      setRun((r) => ({
        ...r,
        rows: { ...r.rows, [event.model]: { phase: "error", message: event.message } },
      }));
    } else {
      setRun((r) => ({ ...r, running: false, done: event }));
    }
  };

  const testLoad = async () => {
    setConfirming(false);
    const ids = held.map((row) => row.model.id);
    setRun({
      ...IDLE_RUN,
      running: true,
      total: ids.length,
      rows: Object.fromEntries(ids.map((id) => [id, { phase: "queued" } as RowRun])),
    });
    try {
      const response = await apiPost("/api/v1/models/test-load", {});
      await readNdjson<TestLoadEvent>(response, onTestEvent);
      setRun((r) => r.running ? { ...r, running: false, error: "the stream ended early" } : r);
    } catch (error) {
      const message = error instanceof ApiError && error.status === 409
        ? "A test load is already running: wait for it to finish."
        : error instanceof ApiError && error.code === "cancelled"
        ? null
        : `Test load failed: ${(error as Error).message}`;
      setRun((r) => ({
        ...r,
        running: false,
        error: message,
        rows: Object.fromEntries(
          Object.entries(r.rows).filter(([, row]) => row.phase === "ok" || row.phase === "error"),
        ),
      }));
    }
    setAttempt((n) => n + 1); // the profiles the run saved
  };

  // Without a GPU the VRAM column would read "—" on every row: leave it out.
  const showVram = gpuUsable || held.some((row) => row.model.gpuProfile !== null);
  const activity = new Map<string, Activity>(
    (report?.offloader?.pipelines ?? []).map((p) => [p.id, p]),
  );
  const livePipelines = new Map((report?.pipelines ?? []).map((p) => [p.id, p]));

  const rows = held.map(({ model, at }) => {
    const live = livePipelines.get(model.id);
    return live && reportAt >= at ? applySnapshot(model, live) : model;
  });
  const anyLoaded = rows.some((model) => model.placement !== "none");

  return (
    <div
      class="pipelines"
      data-status={fetchState.kind}
      data-test-load={run.running ? "running" : run.done ? "done" : run.error ? "error" : "idle"}
    >
      <div class="panel-head">
        <h2 id="pipelines-title">Pipelines</h2>
        <div class="panel-tools">
          <button
            type="button"
            class="btn-primary"
            disabled={run.running || confirming || held.length === 0}
            aria-busy={run.running}
            title="Load each model alone, measure its VRAM, RAM and load time, then unload it"
            onClick={() => anyLoaded ? setConfirming(true) : testLoad()}
          >
            {run.running ? `Test load running… ${run.current}/${run.total}` : "Test load"}
          </button>
        </div>
      </div>
      {prompt && <TokenForm prompt={prompt} />}
      {confirming && (
        <div class="confirm" role="alertdialog" aria-labelledby="confirm-text">
          <p id="confirm-text">
            A test load unloads every loaded model while it measures each one alone; they stay
            unloaded afterwards.
          </p>
          <button type="button" class="btn-primary" onClick={testLoad}>Run test load</button>
          <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
        </div>
      )}
      {run.error && <p class="panel-msg panel-error" role="alert">{run.error}</p>}
      {run.done && (
        <p class="panel-msg run-summary" role="status">
          Test load done in {formatMs(run.done.ms)}: {run.done.total - run.done.failed} measured
          {run.done.failed > 0 ? `, ${run.done.failed} failed` : ""}.{" "}
          <button type="button" class="btn-link" onClick={() => setRun(IDLE_RUN)}>Dismiss</button>
        </p>
      )}
      {fetchState.kind === "error" && (
        <p class="panel-msg panel-error" role="alert">
          Cannot refresh the pipelines: {fetchState.message}.{" "}
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>Retry</button>
        </p>
      )}
      {held.length === 0
        ? (
          <p class="panel-msg" aria-busy={fetchState.kind === "loading"}>
            {fetchState.kind === "loading" ? "Loading pipelines…" : "No models in the catalog."}
          </p>
        )
        : (
          <div class="table-wrap">
            <table class="ptable">
              <thead>
                <tr>
                  <th scope="col" class="col-dot">
                    <span class="visually-hidden">Placement</span>
                  </th>
                  <th scope="col">Model</th>
                  <th scope="col">State</th>
                  {showVram && <th scope="col" class="num">VRAM</th>}
                  <th scope="col" class="num">RAM</th>
                  <th scope="col" class="num">Load</th>
                  <th scope="col" class="num">Idle</th>
                  <th scope="col" class="col-actions">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((model) => {
                  const view = rowView(model, activity.get(model.id), reportAt, now);
                  const doing = busy[model.id];
                  const moving = view.indicator === "moving";
                  const disabled = !!doing || moving || run.running;
                  const error = rowErrors[model.id];
                  return (
                    <tr
                      key={model.id}
                      data-model={model.id}
                      data-state={model.state}
                      data-indicator={view.indicator}
                      data-run={run.rows[model.id]?.phase}
                    >
                      <td class="col-dot">
                        <span
                          class={`dot dot-${view.indicator}`}
                          role="img"
                          aria-label={view.indicatorLabel}
                          title={view.indicatorLabel}
                        />
                      </td>
                      <th scope="row" class="col-model">
                        <span class="model-name" title={model.id}>{model.name}</span>
                        {model.name !== model.id && <span class="model-id">{model.id}</span>}
                        <span class="flags">
                          {model.pinned && (
                            <Flag kind="pin" label="pinned" tip="Pinned: never evicted" />
                          )}
                          {model.leak && <Flag kind="leak" label="leak" tip={model.leak} />}
                          {model.gpuMismatch && (
                            <Flag
                              kind="mismatch"
                              label="GPU≠CPU"
                              tip={mismatchText(model.gpuMismatch)}
                            />
                          )}
                          {model.error && <Flag kind="error" label="error" tip={model.error} />}
                        </span>
                        {error && <span class="row-error" role="alert">{error}</span>}
                      </th>
                      <td class="col-state">
                        <span class="state">{doing ? `${doing}…` : view.stateLabel}</span>
                        {!doing && view.engine && (
                          <span class="engine" data-engine={view.engine} title="Its engine">
                            {" "}
                            {view.engine}
                          </span>
                        )}
                        {doing && <span class="spinner" aria-hidden="true" />}
                        <RunMark run={run.rows[model.id]} />
                      </td>
                      {showVram && <FigureCell figure={view.vram} name="vram" />}
                      <FigureCell figure={view.ram} name="ram" />
                      <FigureCell figure={view.loadTime} name="load" />
                      <td class="num col-idle" data-col="idle">
                        {mounted ? view.idle : "—"}
                        {mounted && view.keepAlive && (
                          <small class="keep-alive" data-keep-alive title="Keep-alive countdown">
                            {` · ${view.keepAlive}`}
                          </small>
                        )}
                      </td>
                      <td class="col-actions">
                        <div class="actions">
                          {model.placement === "none" && gpuUsable && (
                            <button
                              type="button"
                              disabled={disabled}
                              onClick={() => act(model.id, "gpu")}
                              aria-label={`Load ${model.id} on the GPU`}
                            >
                              Load GPU
                            </button>
                          )}
                          {model.placement === "none" && (
                            <button
                              type="button"
                              disabled={disabled}
                              onClick={() => act(model.id, "cpu")}
                              aria-label={`Load ${model.id} on the CPU`}
                            >
                              {gpuUsable ? "Load CPU" : "Load"}
                            </button>
                          )}
                          {model.placement === "cpu" && gpuUsable && !model.gpuMismatch && (
                            <button
                              type="button"
                              disabled={disabled}
                              onClick={() => act(model.id, "gpu")}
                              aria-label={`Move ${model.id} to the GPU`}
                            >
                              To GPU
                            </button>
                          )}
                          {model.placement === "gpu" && (
                            <button
                              type="button"
                              disabled={disabled}
                              onClick={() => act(model.id, "offload")}
                              aria-label={`Offload ${model.id} to the CPU`}
                            >
                              Offload
                            </button>
                          )}
                          {model.placement !== "none" && (
                            <button
                              type="button"
                              disabled={disabled}
                              onClick={() => act(model.id, "unload")}
                              aria-label={`Unload ${model.id}`}
                            >
                              Unload
                            </button>
                          )}
                          <button
                            type="button"
                            class="btn-pin"
                            disabled={!!doing || run.running}
                            aria-pressed={model.pinned}
                            aria-label={`${model.pinned ? "Unpin" : "Pin"} ${model.id}`}
                            title={model.pinned
                              ? "Pinned: the offloader never evicts it. Click to unpin."
                              : "Pin: the offloader will never evict it"}
                            onClick={() => act(model.id, model.pinned ? "unpin" : "pin")}
                          >
                            {model.pinned ? "Unpin" : "Pin"}
                          </button>
                        </div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      <p class="legend" aria-hidden="true">
        <span>
          <span class="dot dot-active" /> GPU, serving
        </span>
        <span>
          <span class="dot dot-idle" /> GPU, idle
        </span>
        <span>
          <span class="dot dot-cpu" /> CPU
        </span>
        <span>
          <span class="dot dot-unloaded" /> unloaded
        </span>
        <span>
          <span class="fig-last">italic</span> = last measured
        </span>
      </p>
    </div>
  );
}

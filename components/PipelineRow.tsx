/**
 * One row of the pipelines table: the placement dot, the model's name and flags (pinned,
 * leak, GPU/CPU mismatch, error), its state and engine, VRAM, RAM and load time (live,
 * last-known in gray italic, or "—"), idle time with the keep-alive countdown, and the
 * buttons of the actions the server allows on it now.
 * @module
 */
import type { ModelAction, ModelRow } from "../core/types.ts";
import type { HeldRow } from "../dashboard/pipelines_store.ts";
import type { RowRun } from "../dashboard/test_load.ts";
import { actionButtons, type Figure, mismatchText, rowView } from "../dashboard/pipeline_view.ts";
import { Tipped } from "./Tip.tsx";

/** Props of {@link PipelineRow}. */
export interface PipelineRowProps {
  held: HeldRow;
  /** The time to render with (ms, the browser's clock once mounted). */
  now: number;
  /** False on the server and in the hydration render: times show "—" until then. */
  mounted: boolean;
  /** Whether the table has a VRAM column. */
  showVram: boolean;
  /** What its running action does ("Unloading"), if one runs. */
  doing?: string;
  /** Why its last action failed, if it did. */
  error?: string;
  /** Its test load mark, while a test load runs or after. */
  run?: RowRun;
  /** True while a test load runs: every action waits. */
  testRunning: boolean;
  onAct(action: ModelAction): void;
}

function FigureCell({ figure, name }: { figure: Figure; name: string }) {
  return (
    <td class={`num fig fig-${figure.kind}`} data-col={name} title={figure.title}>
      {figure.text}
    </td>
  );
}

function Flag({ kind, label, tip }: { kind: string; label: string; tip: string }) {
  return (
    <Tipped class={`flag flag-${kind}`} tip={tip} label={`${label}: ${tip}`}>
      {label}
    </Tipped>
  );
}

/** What the batch flag's tip says: the largest batch, the runs, the limit and any cap. */
function batchText(batch: NonNullable<ModelRow["batch"]>): string {
  const mean = batch.runs > 0 ? (batch.rows / batch.runs).toFixed(1) : "0";
  const cap = batch.capRows === null
    ? ""
    : `; capped at ${batch.capRows} on the GPU after running out of memory`;
  return `Dynamic batching: largest batch ${batch.largestRows} rows, ${batch.runs} runs ` +
    `(${mean} rows a run), at most ${batch.max}${cap}`;
}

/** A row's test load mark: queued, a spinner, ✓ with the figures, or ✗ with the error. */
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
    return <Tipped class="run run-ok" tip={run.text} label={`measured: ${run.text}`}>✓</Tipped>;
  }
  return (
    <Tipped class="run run-error" tip={run.message} label={`failed: ${run.message}`}>
      ✗ <span class="run-error-text">{run.message}</span>
    </Tipped>
  );
}

/** The row of one model. */
export function PipelineRow(
  { held, now, mounted, showVram, doing, error, run, testRunning, onAct }: PipelineRowProps,
) {
  const { row: model, receivedAt } = held;
  const view = rowView(model, receivedAt, now);
  // While it moves, only pinning goes through; while an action or a test load runs, nothing.
  const moving = view.indicator === "moving";
  return (
    <tr
      data-model={model.id}
      data-state={model.state}
      data-indicator={view.indicator}
      data-run={run?.phase}
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
          {model.pinned && <Flag kind="pin" label="pinned" tip="Pinned: never evicted" />}
          {model.leak && <Flag kind="leak" label="leak" tip={model.leak} />}
          {model.gpuMismatch && (
            <Flag kind="mismatch" label="GPU≠CPU" tip={mismatchText(model.gpuMismatch)} />
          )}
          {model.batch && model.batch.largestRows > 1 && (
            <Flag
              kind="batch"
              label={`batch ${model.batch.largestRows}`}
              tip={batchText(model.batch)}
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
        <RunMark run={run} />
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
          {actionButtons(model).map(({ action, text, label, title }) => {
            const pin = action === "pin" || action === "unpin";
            return (
              <button
                key={action}
                type="button"
                class={pin ? "btn-pin" : undefined}
                disabled={!!doing || testRunning || (moving && !pin)}
                aria-pressed={pin ? action === "unpin" : undefined}
                aria-label={label}
                title={title ?? undefined}
                onClick={() => onAct(action)}
              >
                {text}
              </button>
            );
          })}
        </div>
      </td>
    </tr>
  );
}

/**
 * The pipelines panel: every catalog model as a {@link PipelineRow}, the Test Load
 * controls, and the legend. Live: the rows follow the shared feed's reports (each carries
 * every model's row, the same shape `GET /api/v1/models` answers), so the table holds
 * one source of truth, the {@link PipelinesStore}; actions and test loads only add their
 * own progress.
 * @module
 */
import { useEffect, useMemo } from "preact/hooks";
import type { ModelRow } from "../core/types.ts";
import { liveReport } from "../dashboard/live_vram.ts";
import { tokenPrompt } from "../dashboard/page_api.ts";
import { PipelinesStore } from "../dashboard/pipelines_store.ts";
import { TestLoad } from "../dashboard/test_load.ts";
import { PipelineRow } from "../components/PipelineRow.tsx";
import { TestLoadButton, TestLoadNotes } from "../components/TestLoadPanel.tsx";
import { useClock } from "../dashboard/use_clock.ts";
import { TokenForm } from "../components/TokenForm.tsx";

/** Props of {@link PipelinesTable}. */
export interface PipelinesTableProps {
  /** Every model's row when the page was rendered (null: they could not be listed; fetched here). */
  initial: ModelRow[] | null;
  /** Whether a GPU is in use (else the VRAM column is left out until a model was measured on one). */
  gpu: boolean;
  /** When the page was rendered (ms since the epoch), for a clean hydration. */
  renderedAt: number;
}

/** The table with its Test Load button. */
export default function PipelinesTable({ initial, gpu, renderedAt }: PipelinesTableProps) {
  const store = useMemo(() => new PipelinesStore(initial), []);
  const test = useMemo(() => new TestLoad(), []);
  const { now, mounted } = useClock(renderedAt);
  useEffect(() => {
    if (!initial) void store.fetch();
    return store.follow(liveReport);
  }, [store]);

  const held = store.rows.value;
  const fetchState = store.fetchState.value;
  const busy = store.busy.value;
  const errors = store.errors.value;
  const run = test.run.value;
  const prompt = tokenPrompt.value;
  const report = liveReport.value;
  const ids = held.map(({ row }) => row.id);
  // Without a GPU the VRAM column would read "—" on every row: leave it out.
  const showVram = (report ? report.source !== "none" : gpu) ||
    held.some(({ row }) => row.gpuProfile !== null);
  const anyLoaded = held.some(({ row }) => row.placement !== "none");

  return (
    <div class="pipelines" data-status={fetchState.kind} data-test-load={test.phase}>
      <div class="panel-head">
        <h2 id="pipelines-title">Pipelines</h2>
        <div class="panel-tools">
          <TestLoadButton test={test} ids={ids} anyLoaded={anyLoaded} />
        </div>
      </div>
      {prompt && <TokenForm prompt={prompt} />}
      <TestLoadNotes test={test} ids={ids} />
      {fetchState.kind === "error" && (
        <p class="panel-msg panel-error" role="alert">
          Cannot refresh the pipelines: {fetchState.message}.{" "}
          <button type="button" onClick={() => void store.fetch()}>Retry</button>
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
                {held.map((entry) => (
                  <PipelineRow
                    key={entry.row.id}
                    held={entry}
                    now={now}
                    mounted={mounted}
                    showVram={showVram}
                    doing={busy[entry.row.id]}
                    error={errors[entry.row.id]}
                    run={run.rows[entry.row.id]}
                    testRunning={run.running}
                    onAct={(action) => void store.act(entry.row.id, action)}
                  />
                ))}
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

/**
 * The Test Load controls of the pipelines panel: the button in the panel's head (with
 * the run's progress), and under it the confirmation when models are loaded (a run
 * leaves them unloaded), why a run failed, or its summary. The per-row marks are
 * PipelineRow's; the state is a {@link TestLoad}.
 * @module
 */
import type { TestLoad } from "../dashboard/test_load.ts";
import { formatMs } from "../dashboard/pipeline_view.ts";

/** Props of {@link TestLoadButton}. */
export interface TestLoadButtonProps {
  test: TestLoad;
  /** The models a run measures, in table order. */
  ids: readonly string[];
  /** True when some model is loaded: the run then asks first. */
  anyLoaded: boolean;
}

/** The Test Load button: asks first when models are loaded, else starts a run. */
export function TestLoadButton({ test, ids, anyLoaded }: TestLoadButtonProps) {
  const run = test.run.value;
  return (
    <button
      type="button"
      class="btn-primary"
      disabled={run.running || test.confirming.value || ids.length === 0}
      aria-busy={run.running}
      title="Load each model alone, measure its VRAM, RAM and load time, then unload it"
      onClick={() => anyLoaded ? test.confirming.value = true : void test.start(ids)}
    >
      {run.running ? `Test load running… ${run.current}/${run.total}` : "Test load"}
    </button>
  );
}

/** Props of {@link TestLoadNotes}. */
export interface TestLoadNotesProps {
  test: TestLoad;
  /** The models a run measures, in table order. */
  ids: readonly string[];
}

/** The confirmation, the error, or the summary of a run (nothing when idle). */
export function TestLoadNotes({ test, ids }: TestLoadNotesProps) {
  const run = test.run.value;
  return (
    <>
      {test.confirming.value && (
        <div class="confirm" role="alertdialog" aria-labelledby="confirm-text">
          <p id="confirm-text">
            A test load unloads every loaded model while it measures each one alone; they stay
            unloaded afterwards.
          </p>
          <button
            type="button"
            class="btn-primary"
            onClick={() =>
              void test.start(ids)}
          >
            Run test load
          </button>
          <button
            type="button"
            onClick={() =>
              test.confirming.value = false}
          >
            Cancel
          </button>
        </div>
      )}
      {run.error && <p class="panel-msg panel-error" role="alert">{run.error}</p>}
      {run.done && (
        <p class="panel-msg run-summary" role="status">
          Test load done in {formatMs(run.done.ms)}: {run.done.total - run.done.failed} measured
          {run.done.failed > 0 ? `, ${run.done.failed} failed` : ""}.
          {run.done.restored.length ? ` Put back: ${run.done.restored.join(", ")}.` : ""}
          {run.done.notRestored.length
            ? ` Could not put back: ${run.done.notRestored.join(", ")}.`
            : ""}{" "}
          <button type="button" class="btn-link" onClick={() => test.dismiss()}>Dismiss</button>
        </p>
      )}
    </>
  );
}

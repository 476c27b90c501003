/**
 * Worker lifecycle: a pipeline's model files scanned and checked, its worker started
 * with a spec built from the host's settings, and its death noticed (the pipeline is
 * marked failed; the next request starts a fresh worker).
 * @module
 */
import type { Catalog } from "../../core/models/catalog.ts";
import { formatWriteProgress } from "../../core/models/synthetic.ts";
import type { EventLog } from "../../core/events.ts";
import type { CpuEngineReport } from "../../core/types.ts";
import type { CpuEngine, PipelineSpec } from "../../core/pipelines/protocol.ts";
import { PipelineError } from "../../core/pipelines/pipeline_error.ts";
import {
  ModelFileError,
  type OnnxFileInfo,
  scanOnnxFile,
} from "../../core/models/external_data.ts";
import { WorkerClient, type WorkerClientOptions } from "../client.ts";
import { fromStartFailure } from "./worker_errors.ts";
import { PARITY_AT_LOAD_MAX_BYTES } from "./parity.ts";
import type { Pipeline, WorkerHandle } from "./pipeline.ts";

/** Starts one worker for a pipeline. */
export type WorkerStarter = (
  spec: PipelineSpec,
  options: WorkerClientOptions,
) => Promise<WorkerHandle>;

/** The host's settings a worker is started with. */
export interface LifecycleOptions {
  /** Starts workers (default: real Web Workers through WorkerClient.start). */
  startWorker?: WorkerStarter;
  /** Reads a model's files before its worker starts (default: scanOnnxFile). */
  scanModelFile?: (path: string) => Promise<OnnxFileInfo>;
  /** wasm threads per worker. */
  numThreads?: number;
  /** Narrow each worker's Deno permissions (default true). */
  sandbox?: boolean;
  /** The CPU engine (default: wasm). */
  cpuEngine?: CpuEngineReport;
  /** The parity rule's size line (default {@link PARITY_AT_LOAD_MAX_BYTES}). */
  parityAtLoadMaxBytes?: number;
  /** The deadline of each worker step (start, init, load, move, run, unload), in ms. */
  stepTimeoutMs?: number;
  /** Heap cap of each plugin process, in MiB. */
  pluginHeapMiB?: number;
  /** Resident-memory cap of each plugin process, in bytes (HEADROOM_PLUGIN_MEMORY). */
  pluginMemoryBytes?: number;
}

/** Starts pipelines' workers and notices when one dies. */
export class WorkerLifecycle {
  readonly #catalog: Catalog;
  readonly #events: EventLog;
  readonly #options: LifecycleOptions;
  readonly #onDeath: (pipeline: Pipeline) => void;

  /** `onDeath` runs after a worker's unplanned death has been recorded on its pipeline. */
  constructor(
    catalog: Catalog,
    events: EventLog,
    options: LifecycleOptions,
    onDeath: (pipeline: Pipeline) => void,
  ) {
    this.#catalog = catalog;
    this.#events = events;
    this.#options = options;
    this.#onDeath = onDeath;
  }

  /** The CPU engine pipelines use. */
  get cpuEngine(): CpuEngine {
    return this.#options.cpuEngine?.engine ?? "wasm";
  }

  /**
   * The model's files (generated first for a synthetic model), scanned for external data
   * and checked: a corrupt file or missing external data is a bad_model error (422).
   * Rescanned whenever a new worker starts.
   */
  async modelFiles(pipeline: Pipeline): Promise<OnnxFileInfo> {
    if (pipeline.files && pipeline.client?.alive) return pipeline.files;
    const model = pipeline.model;
    let modelPath: string;
    try {
      const onProgress = generationLog(model.id, (line, edge) => {
        console.info(line);
        // The first and the last line reach the dashboard's event log too.
        if (edge) this.#events.emit({ kind: "info", pipeline: model.id, message: line });
      });
      modelPath = await this.#catalog.materialize(model, { onProgress });
    } catch (error) {
      throw new PipelineError(
        "load_failed",
        `Model "${model.id}": cannot prepare its file: ${(error as Error).message}`,
      );
    }
    try {
      pipeline.files = await (this.#options.scanModelFile ?? scanOnnxFile)(modelPath);
    } catch (error) {
      if (error instanceof ModelFileError) {
        const code = error.kind === "too_large" ? "model_too_large" : "bad_model";
        throw new PipelineError(code, `Model "${model.id}": ${error.message}`);
      }
      throw new PipelineError(
        "load_failed",
        `Model "${model.id}": cannot read ${modelPath}: ${(error as Error).message}`,
      );
    }
    return pipeline.files;
  }

  /** The pipeline's worker, started if there is none (or it died). */
  async ensure(pipeline: Pipeline): Promise<WorkerHandle> {
    if (pipeline.client?.alive) return pipeline.client;
    const model = pipeline.model;
    const files = await this.modelFiles(pipeline);
    const engine = this.#options.cpuEngine;
    let client: WorkerHandle;
    const start = this.#options.startWorker ?? WorkerClient.start;
    try {
      client = await start({
        modelId: model.id,
        modelPath: files.path,
        externalData: files.externalData.map(({ location, path }) => ({ location, path })),
        modelBytes: files.totalBytes,
        cpuEngine: this.cpuEngine,
        ortNodeDir: engine?.ortNodeDir ?? null,
        cpuThreads: engine?.threads ?? 1,
        pluginUrl: model.pluginUrl,
        assets: model.assets,
        numThreads: this.#options.numThreads ?? 1,
        parityAtLoadMaxBytes: this.#options.parityAtLoadMaxBytes ?? PARITY_AT_LOAD_MAX_BYTES,
      }, {
        sandbox: this.#options.sandbox ?? true,
        stepTimeoutMs: this.#options.stepTimeoutMs,
        pluginHeapMiB: this.#options.pluginHeapMiB,
        pluginMemoryBytes: this.#options.pluginMemoryBytes,
      });
    } catch (error) {
      throw fromStartFailure(error, model.id);
    }
    pipeline.client = client;
    client.onExit((reason) => {
      if (pipeline.client !== client) return; // ended on purpose (unload, restart)
      pipeline.client = null;
      this.#onDeath(pipeline);
      pipeline.state = "failed";
      pipeline.error = `Worker died: ${reason}`;
      this.#events.emit({
        kind: "failure",
        pipeline: model.id,
        message: `${model.id} worker died (${reason}); the next request starts a fresh worker`,
      });
    });
    return client;
  }
}

/** How often a model being generated logs its progress. */
const GENERATION_LOG_MS = 2000;

/**
 * Progress lines for a synthetic model written on its first load (a 4 GiB one takes
 * tens of seconds): silent for a write that ends within 2 s, then one line every 2 s
 * and a last one, each with the rate (`Generating model "m4g": 1.25 of 4.00 GiB (31 %),
 * 310 MiB/s`). `log` gets each line and whether it is the first or the last one.
 */
export function generationLog(
  id: string,
  log: (line: string, edge: boolean) => void,
  now: () => number = () => performance.now(),
): (written: number, total: number) => void {
  const started = now();
  let last = started;
  let logged = false;
  return (written, total) => {
    const at = now();
    if (at - last < GENERATION_LOG_MS && !(logged && written >= total)) return;
    last = at;
    const edge = !logged || written >= total;
    logged = true;
    log(
      `Generating model "${id}": ${formatWriteProgress(written, total, (at - started) / 1000)}`,
      edge,
    );
  };
}

/**
 * What the scheduler shows, read-only: the policy's figures (`status()`: budget,
 * headroom, what is available above it, releasing bytes, the section, each pipeline's
 * activity and keep-alive), each model for the API (the host's report with the record's
 * pin, last use, leak and keep-alive), and the per-pipeline rows of the VRAM report.
 * @module
 */
import type { ModelReport, ModelRow, OffloaderStatus, PipelineReport } from "../types.ts";
import type { Clock } from "../clock.ts";
import { modelActions } from "./actions.ts";
import type { SectionGate } from "./gate.ts";
import type { GpuAccount } from "./gpu_state.ts";
import type { PipelineHost } from "./host.ts";
import type { KeepAliveTimers } from "./keep_alive.ts";
import type { Records } from "./records.ts";
import type { ReleaseWatch } from "./release_watch.ts";

/** What the reports read. */
export interface ReportsOptions {
  host: Pick<PipelineHost, "ids" | "view" | "report" | "trackedBytes">;
  clock: Clock;
  records: Records;
  account: GpuAccount;
  releases: ReleaseWatch;
  keepAlives: KeepAliveTimers;
  gate: SectionGate;
  mode: "shared" | "exclusive";
  onInsufficientVram: "cpu" | "reject";
}

/** The scheduler's read-only views. */
export class Reports {
  readonly #o: ReportsOptions;

  constructor(options: ReportsOptions) {
    this.#o = options;
  }

  /** The policy's figures, for the API. */
  status(): OffloaderStatus {
    const { account, host, records, keepAlives } = this.#o;
    const reading = account.read(false);
    const state = account.state(reading, false);
    const ours = host.trackedBytes();
    const available = Math.min(state.deviceFreeBytes, state.budgetBytes - ours) -
      state.headroomBytes;
    const pipelines: OffloaderStatus["pipelines"] = [];
    for (const record of records.values()) {
      pipelines.push({
        id: record.id,
        activeCount: record.activeCount,
        pinned: record.pinned,
        lastUsedAt: record.lastUsedAt,
        idleMs: record.lastUsedAt ? Math.max(0, state.now - record.lastUsedAt) : 0,
        keepAliveDeadline: record.keepAliveDeadline,
        idleAction: keepAlives.policy(record.id).idleAction,
      });
    }
    return {
      budgetBytes: state.budgetBytes,
      headroomBytes: state.headroomBytes,
      availableBytes: available,
      onInsufficientVram: this.#o.onInsufficientVram,
      mode: this.#o.mode,
      releasingBytes: this.#o.releases.releasingBytes,
      section: this.#o.gate.label,
      pipelines,
    };
  }

  /**
   * One model for the API: the host's figures with the record's pin, last use, leak,
   * keep-alive and activity, and the actions it allows now.
   */
  model(id: string): ModelRow {
    return this.#row(id, this.#o.account.read(false).state !== "none", this.#o.clock.now());
  }

  /** Every model, in catalog order. */
  list(): ModelRow[] {
    const gpu = this.#o.account.read(false).state !== "none";
    const now = this.#o.clock.now();
    return this.#o.host.ids().map((id) => this.#row(id, gpu, now));
  }

  #row(id: string, gpu: boolean, now: number): ModelRow {
    const record = this.#o.records.get(id);
    const report = this.#o.host.report(id);
    const model: ModelReport = {
      ...report,
      pinned: record.pinned,
      lastUsedAt: record.lastUsedAt || null,
      leak: record.leak ?? report.leak,
      keepAliveDeadline: record.keepAliveDeadline,
      cpuReason: report.placement === "cpu" ? record.cpuReason : null,
    };
    return {
      ...model,
      activeCount: record.activeCount,
      idleMs: record.lastUsedAt ? Math.max(0, now - record.lastUsedAt) : 0,
      idleAction: this.#o.keepAlives.policy(id).idleAction,
      actions: modelActions(model, gpu),
      takenAt: now,
    };
  }

  /** The per-pipeline breakdown of the VRAM report. */
  placements(): PipelineReport[] {
    const { host, records } = this.#o;
    return host.ids().map((id) => {
      const view = host.view(id)!;
      const record = records.get(id);
      const report = host.report(id);
      return {
        id,
        state: view.state,
        placement: view.placement,
        gpuBytes: view.gpuBytes,
        gpuBuffers: report.gpuBuffers,
        error: report.error,
        pinned: record.pinned,
        leak: record.leak ?? report.leak,
        gpuMismatch: view.gpuMismatch,
        engine: report.engine,
        ramBytes: report.ramBytes,
      };
    });
  }
}

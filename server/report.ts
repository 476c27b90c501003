/**
 * The VRAM report feed: builds the body of `GET /api/v1/hardware/vram` once per change
 * (a new monitor sample, a new event: every placement change emits one) and hands the
 * same build to the GET route, each SSE snapshot, the dashboard and `/metrics`, instead
 * of each building its own.
 * @module
 */
import type { CpuEngineReport, ModelRow, VramReport, VramSample } from "../core/types.ts";
import type { VramMonitor } from "../core/monitor/vram_monitor.ts";
import type { Scheduler } from "../core/placement/scheduler.ts";
import type { EventLog } from "../core/events.ts";
import type { ProfileStore } from "../core/store/profiles.ts";

/**
 * Longest a report is reused. It is rebuilt at once on a new sample or a new event; in
 * between, only activity counters and idle times can be up to this old. Pollers are the
 * hot path: this keeps them cheap.
 */
export const REPORT_REUSE_MS = 250;

/** What a report is built from (the service's parts; a narrow view so tests can pass their own). */
export interface ReportSources {
  monitor: Pick<VramMonitor, "current" | "sourceKind" | "reason" | "source">;
  scheduler: Pick<Scheduler, "status" | "list">;
  events: Pick<EventLog, "recent" | "lastSeq">;
  cpuEngine: CpuEngineReport | null;
  /** The KV store, for its health (absent in tests that have none). */
  store?: Pick<ProfileStore, "health">;
}

/** One build of the report, shared by every reader until the next change. */
export interface ReportBuild {
  /** Numbered from 1 per feed: two reads with the same number got the same object. */
  build: number;
  /** The monitor's sample it was built from. */
  sample: VramSample;
  report: VramReport;
  /** The report serialized, made once on first use (the GET body and each SSE snapshot). */
  readonly json: string;
}

/** Builds the report for a sample (the monitor's current one by default). */
export function buildVramReport(sources: ReportSources, sample?: VramSample): VramReport {
  const { monitor } = sources;
  const current = sample ?? monitor.current();
  const models = listModels(sources);
  return {
    source: monitor.sourceKind,
    reason: monitor.reason,
    driverVersion: monitor.source.driverVersion,
    devices: current.devices,
    scheduler: sources.scheduler.status(),
    events: sources.events.recent(20),
    ...(sources.cpuEngine ? { cpuEngine: sources.cpuEngine } : {}),
    ...(models ? { models } : {}),
    ...(sources.store ? { storage: sources.store.health() } : {}),
    takenAt: current.takenAt,
  };
}

/** The one place the VRAM report is built: {@link ReportFeed.current} answers the same build until a change. */
export class ReportFeed {
  readonly #sources: ReportSources;
  readonly #now: () => number;
  readonly #maxAgeMs: number;
  #latest: { build: ReportBuild; seq: number; at: number } | null = null;
  #builds = 0;

  /** `now` is injected so tests control the reuse window. */
  constructor(sources: ReportSources, now: () => number = Date.now, maxAgeMs = REPORT_REUSE_MS) {
    this.#sources = sources;
    this.#now = now;
    this.#maxAgeMs = maxAgeMs;
  }

  /** How many reports this feed has built (what the reuse saves shows as a smaller count). */
  get builds(): number {
    return this.#builds;
  }

  /** The current build: reused while the sample and the event log are the same and it is young. */
  current(): ReportBuild {
    const sample = this.#sources.monitor.current();
    const seq = this.#sources.events.lastSeq;
    const now = this.#now();
    const latest = this.#latest;
    if (
      latest && latest.build.sample === sample && latest.seq === seq &&
      now - latest.at < this.#maxAgeMs
    ) {
      return latest.build;
    }
    const report = buildVramReport(this.#sources, sample);
    let json: string | null = null;
    const build: ReportBuild = {
      build: ++this.#builds,
      sample,
      report,
      get json() {
        return json ??= JSON.stringify(report);
      },
    };
    this.#latest = { build, seq, at: now };
    return build;
  }
}

/** The last listing error logged (each report would repeat it, four a second). */
let lastListError = "";

/**
 * Every model's row (the same rows `GET /api/v1/models` answers), or null when they
 * cannot be listed now: the device figures still go out (the page then fetches
 * `GET /api/v1/models`, which answers the error).
 */
function listModels(sources: ReportSources): ModelRow[] | null {
  try {
    const models = sources.scheduler.list();
    lastListError = "";
    return models;
  } catch (error) {
    const message = String(error);
    if (message !== lastListError) {
      console.error(`VRAM report: cannot list the models (sent without them): ${message}`);
    }
    lastListError = message;
    return null;
  }
}

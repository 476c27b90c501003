/**
 * `GET /`: the dashboard. A status bar with each device's live memory bar, the memory
 * history chart, the pipelines table with its actions and Test Load, and the event log.
 * @module
 */
import type { Handlers, RouteConfig } from "@/server/http/context.ts";
import { renderPage } from "@/server/page.ts";
import { carriesToken, needsToken } from "@/server/http/auth.ts";
import type { ModelRow, VramReport } from "@/core/types.ts";
import type { ConfiguredLimits } from "@/dashboard/vram_format.ts";
import VramHistory from "@/islands/VramHistory.tsx";
import VramStatus from "@/islands/VramStatus.tsx";
import PipelinesTable from "@/islands/PipelinesTable.tsx";
import EventLog from "@/islands/EventLog.tsx";

/**
 * A page: open even with HEADROOM_TOKEN_FOR_READS, but then it carries no data until the
 * token is given (the API it calls is guarded; the page fetches after sign-in).
 */
export const config: RouteConfig = { summary: "The dashboard", auth: "page", produces: "html" };

/**
 * What the page embeds for a visitor without the token under HEADROOM_TOKEN_FOR_READS:
 * no devices, events, models, scheduler figures or CPU engine, only the source kind the islands
 * need to lay out; the live stream and the table fill in after sign-in.
 */
function signedOutReport(report: VramReport): VramReport {
  return {
    source: report.source,
    reason: null,
    driverVersion: null,
    devices: [],
    events: [],
    takenAt: 0,
  };
}

/** Renders the dashboard with the current report (or none, to a visitor without the token). */
export const handler: Handlers = {
  GET: (c) => {
    const { config } = c.var.services;
    const current = c.var.services.reports.current().report;
    const guarded = needsToken("GET", "read", config) && !carriesToken(c, config.token!);
    // The rows go to the table alone; without them (not listed) the table fetches them.
    const { models, ...report } = guarded ? signedOutReport(current) : current;
    return renderPage(
      <Dashboard
        report={report}
        models={models ?? null}
        renderedAt={Date.now()}
        limits={{ budget: config.vramBudget, headroomBytes: config.headroomBytes }}
        historySeconds={Math.floor(config.historyMs / 1000)}
      />,
      { title: "Headroom" },
    );
  },
};

/** Props of {@link Dashboard}. */
export interface DashboardProps {
  report: VramReport;
  /** Every model's row (null: the table fetches them). */
  models: ModelRow[] | null;
  /** When the page was rendered (ms since the epoch). */
  renderedAt: number;
  limits: ConfiguredLimits;
  /** The history the service keeps, in seconds. */
  historySeconds: number;
}

/** The dashboard page. */
export default function Dashboard(
  { report, models, renderedAt, limits, historySeconds }: DashboardProps,
) {
  return (
    <>
      <header class="topbar">
        <a class="brand" href="/" aria-label="Headroom dashboard">
          <svg viewBox="0 0 16 16" width="18" height="18" aria-hidden="true" focusable="false">
            <rect class="brand-1" x="1" y="9" width="4" height="6" />
            <rect class="brand-2" x="6" y="5" width="4" height="10" />
            <rect class="brand-3" x="11" y="1" width="4" height="14" />
          </svg>
          Headroom
        </a>
        <VramStatus initial={report} limits={limits} />
      </header>
      <main class="layout">
        <section id="history" class="panel" aria-labelledby="history-title">
          <VramHistory source={report.source} limits={limits} maxSeconds={historySeconds} />
        </section>
        <section id="pipelines" class="panel" aria-labelledby="pipelines-title">
          <PipelinesTable
            initial={models}
            gpu={report.source !== "none"}
            renderedAt={renderedAt}
          />
        </section>
        <section id="events" class="panel" aria-labelledby="events-title">
          <EventLog initial={report.events ?? []} renderedAt={renderedAt} />
        </section>
      </main>
      <footer class="footer">
        <a href="/api/v1/hardware/vram">VRAM JSON</a>
        <a href="/api/v1/health">Health</a>
        <a href="/metrics">Metrics</a>
      </footer>
    </>
  );
}

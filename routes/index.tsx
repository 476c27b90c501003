/**
 * `GET /`: the dashboard. A status bar with each device's live memory bar, the memory
 * history chart, and the places the pipelines table and the event log go.
 * @module
 */
import type { Handlers } from "../core/http/context.ts";
import { renderPage } from "../core/islands/page.ts";
import { buildVramReport } from "../core/report.ts";
import type { VramReport } from "../core/types.ts";
import type { ConfiguredLimits } from "../components/vram_format.ts";
import VramHistory from "../islands/VramHistory.tsx";
import VramStatus from "../islands/VramStatus.tsx";

/** Renders the dashboard with the current report. */
export const handler: Handlers = {
  GET: (c) => {
    const { config } = c.var.services;
    return renderPage(
      <Dashboard
        report={buildVramReport(c.var.services)}
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
  limits: ConfiguredLimits;
  /** The history the service keeps, in seconds. */
  historySeconds: number;
}

/** The dashboard page. */
export default function Dashboard({ report, limits, historySeconds }: DashboardProps) {
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
          <div class="panel-head">
            <h2 id="pipelines-title">Pipelines</h2>
          </div>
          <p class="panel-msg">No pipelines loaded.</p>
        </section>
        <section id="events" class="panel" aria-labelledby="events-title">
          <div class="panel-head">
            <h2 id="events-title">Events</h2>
          </div>
          <p class="panel-msg">No events yet.</p>
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

/**
 * What the browser tests (and the dashboard benchmark) share: a real Headroom on
 * Deno.serve whose SSE streams a test can cut, Debian's chromium through playwright-core,
 * pages that record console errors, screenshots, and the device-change-to-screen
 * latency measurement.
 *
 * Without chromium or the built driver double (`deno task build:fake-gpu`) the tests
 * are skipped locally and fail when `CI` is set: see tests/_requires.ts.
 * @module
 */
import type { Browser, Page } from "playwright-core";
import { CHROMIUM_PATH, launchChromium } from "../../scripts/_lib/chromium.ts";
import { type ServedHeadroom, serveHeadroom } from "../../server/serve_headroom.ts";
import type { Service } from "../../server/service.ts";
import type { FakeGpu } from "../fake_gpu.ts";

/** Debian's chromium. */
export const CHROMIUM = CHROMIUM_PATH;
/** Where screenshots and measurements go. */
export const ARTIFACTS: URL = new URL("../artifacts/", import.meta.url);
/** The live stream's path (the one {@link StreamCutter} can cut). */
export const STREAM_PATH = "/api/v1/hardware/vram/stream";

/** True when `path` exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Lets a test cut every open SSE stream and refuse new ones, as a dying server would. */
export class StreamCutter {
  /** While true, new streams are refused with 503. */
  blocked = false;
  #open = new Set<() => void>();

  /** Wraps the app's fetch so its stream responses can be cut. */
  wrap(fetch: (request: Request) => Response | Promise<Response>) {
    return async (request: Request): Promise<Response> => {
      if (new URL(request.url).pathname !== STREAM_PATH) return fetch(request);
      if (this.blocked) return new Response("stream blocked by the test", { status: 503 });
      const response = await fetch(request);
      const reader = response.body!.getReader();
      let cut = () => {};
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => {
          cut = () => {
            controller.close();
            reader.cancel().catch(() => {});
          };
          this.#open.add(cut);
        },
        pull: async (controller) => {
          const { done, value } = await reader.read();
          if (done) {
            this.#open.delete(cut);
            controller.close();
          } else controller.enqueue(value);
        },
        cancel: (reason) => {
          this.#open.delete(cut);
          return reader.cancel(reason);
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    };
  }

  /** Ends every open stream, as a server going away does (the browser sees it drop). */
  cutAll(): number {
    const n = this.#open.size;
    for (const cut of this.#open) cut();
    this.#open.clear();
    return n;
  }
}

/** A running service, its server and what to clean up. */
export interface Harness {
  service: Service;
  server: Deno.HttpServer<Deno.NetAddr>;
  /** The dashboard's URL (ends with "/"). */
  url: string;
  cutter: StreamCutter;
  dataDir: string;
  /** What {@link serveHeadroom} started (closed by {@link stop}). */
  headroom: ServedHeadroom;
}

/** Starts Headroom with `args` (plus a temp data dir, 100 ms sampling, 2 GiB headroom). */
export async function serve(args: string[]): Promise<Harness> {
  const cutter = new StreamCutter();
  const headroom = await serveHeadroom({
    args: [...args, "--sample-ms", "100", "--headroom", "2GiB"],
    wrapFetch: (fetch) => cutter.wrap(fetch),
    tempPrefix: "headroom_browser_",
  });
  return {
    service: headroom.service,
    server: headroom.server,
    url: `${headroom.url}/`,
    cutter,
    dataDir: headroom.config.dataDir,
    headroom,
  };
}

/** Stops what {@link serve} started and removes its data dir (safe on undefined). */
export async function stop(harness: Harness | undefined): Promise<void> {
  if (!harness) return;
  harness.cutter.cutAll();
  await harness.headroom.close();
}

/** Writes a models file of `models` to a temp dir; returns its path. */
export async function writeModelsFile(models: unknown[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "headroom_models_" });
  const path = `${dir}/models.json`;
  await Deno.writeTextFile(path, JSON.stringify({ models }));
  return path;
}

/**
 * A Headroom on the private driver double `gpu`, reading it through NVML, with a 90 %
 * budget, plus any further flags: how every dashboard test and the benchmark start one.
 */
export function serveOnFakeGpu(gpu: FakeGpu, extraArgs: string[] = []): Promise<Harness> {
  return serve([
    "--gpu",
    "nvidia",
    "--nvml-library",
    gpu.path,
    "--vram-budget",
    "90%",
    ...extraArgs,
  ]);
}

/** Headless chromium (the one launch shared with the fixture script). */
export function launch(): Promise<Browser> {
  return launchChromium();
}

/** A page at `url` that records console errors and uncaught exceptions, once hydrated. */
export async function openPage(
  browser: Browser,
  url: string,
  viewport = { width: 1280, height: 720 },
): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForSelector("[data-ready] .vram, [data-ready] .nogpu");
  return { page, errors };
}

/** Saves a screenshot as tests/artifacts/<name>.png; returns its path. */
export async function screenshot(
  page: Page,
  name: string,
  options: { fullPage?: boolean } = {},
): Promise<string> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const path = new URL(`${name}.png`, ARTIFACTS).pathname;
  await page.screenshot({ path, fullPage: options.fullPage ?? false });
  return path;
}

/** The `q` quantile of sorted numbers (linear between neighbours). */
export function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

/** Waits until device 0's meter shows `bytes`. */
export async function waitForUsed(page: Page, bytes: number, timeout = 5000): Promise<void> {
  await page.waitForSelector(`[data-device="0"] [role="meter"][aria-valuenow="${bytes}"]`, {
    timeout,
  });
}

/** What {@link measureScreenLatency} found. */
export interface LatencyResult {
  changes: number;
  medianMs: number;
  p95Ms: number;
  maxMs: number;
  latenciesMs: number[];
}

/**
 * Changes device 0's used bytes on the driver double `changes` times (via `setUsed`,
 * which returns the bytes it set) and times each change until the frame after the meter
 * shows it: change → sample → SSE → signal → DOM → next frame. Changes are paced past
 * the stream's four-a-second cap, so each one is timed alone.
 */
export async function measureScreenLatency(
  page: Page,
  setUsed: (i: number) => number,
  changes = 20,
): Promise<LatencyResult> {
  await page.evaluate(() => {
    const w = window as unknown as { seen: Map<string, number> };
    w.seen = new Map();
    const meter = document.querySelector('[data-device="0"] [role="meter"]')!;
    new MutationObserver(() => {
      const value = meter.getAttribute("aria-valuenow")!;
      if (w.seen.has(value)) return;
      w.seen.set(value, -1);
      // On screen = the frame after the DOM changed.
      requestAnimationFrame(() => w.seen.set(value, performance.timeOrigin + performance.now()));
    }).observe(meter, { attributes: true, attributeFilter: ["aria-valuenow"] });
  });
  const latencies: number[] = [];
  for (let i = 0; i < changes; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const changedAt = performance.timeOrigin + performance.now();
    const bytes = setUsed(i);
    await waitForUsed(page, bytes, 2000);
    const shownAt = await page.waitForFunction(
      (value) => {
        const at = (window as unknown as { seen: Map<string, number> }).seen.get(value);
        return at !== undefined && at > 0 ? at : null;
      },
      String(bytes),
    ).then((handle) => handle.jsonValue() as Promise<number>);
    latencies.push(shownAt - changedAt);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    changes: latencies.length,
    medianMs: Math.round(quantile(sorted, 0.5)),
    p95Ms: Math.round(quantile(sorted, 0.95)),
    maxMs: Math.round(sorted.at(-1)!),
    latenciesMs: latencies.map((ms) => Math.round(ms)),
  };
}

/** Sets device 0's used share of `total` to `percent` on the double; returns the bytes. */
export function setUsedPercent(gpu: FakeGpu, total: number, percent: number): number {
  const bytes = Math.round((total * percent) / 100);
  gpu.setOtherUsed(0, bytes);
  return bytes;
}

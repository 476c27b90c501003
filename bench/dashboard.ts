/**
 * The dashboard's figures, measured in chromium against a real Headroom on the driver
 * test double: latency from a device change to the new number on screen (change →
 * monitor sample → SSE snapshot → signal → DOM → next frame), median and p95 over
 * `--changes` changes, and the bytes of JavaScript the page ships (the island bundle,
 * its only script) raw, gzip and brotli. Writes bench/dashboard.json.
 *
 * `deno run --allow-all bench/dashboard.ts [--changes 40]`; not a
 * `*_bench.ts` file because `deno bench` times functions, and this times a browser.
 * `deno task bench` runs it (scripts/bench.ts, "Dashboard"). Needs /usr/bin/chromium and
 * `deno task build:fake-gpu`; exits 2 without them.
 * @module
 */
import { parseArgs } from "node:util";
import type { Browser } from "playwright-core";
import { FAKE_GPU_PATH, FakeGpu, GiB } from "../tests/fake_gpu.ts";
import {
  CHROMIUM,
  exists,
  type Harness,
  launch,
  measureScreenLatency,
  openPage,
  serveOnFakeGpu,
  setUsedPercent,
  stop,
  writeModelsFile,
} from "../tests/browser/_harness.ts";

/** What bench/dashboard.json holds. */
export interface DashboardBench {
  ranAt: string;
  latency: {
    changes: number;
    sampleMs: number;
    medianMs: number;
    p95Ms: number;
    maxMs: number;
    targetP95Ms: number;
    latenciesMs: number[];
  };
  javascript: { file: string; rawBytes: number; gzipBytes: number; brotliBytes: number };
  note: string;
}

/** Where the results go. */
export const OUTPUT: URL = new URL("./dashboard.json", import.meta.url);

const TOTAL = 24 * GiB;

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      changes: { type: "string", default: "40" },
    },
  });
  const changes = Number(values.changes);
  if (!Number.isInteger(changes) || changes < 2) {
    console.error(`--changes=${values.changes}: expected a whole number ≥ 2`);
    Deno.exit(2);
  }
  const missing = [CHROMIUM, FAKE_GPU_PATH].filter((path) => !exists(path));
  if (missing.length > 0) {
    console.error(`Dashboard bench needs ${missing.join(" and ")}: skipped.`);
    Deno.exit(2);
  }
  const gpu = new FakeGpu({ isolate: true });
  gpu.setTotal(0, TOTAL);
  gpu.setName(0, "NVIDIA L4 (test double)");
  setUsedPercent(gpu, TOTAL, 30);
  const modelsFile = await writeModelsFile([
    { id: "captioner", source: "synthetic:4MiB" },
    { id: "ocr-det", source: "synthetic:1MiB" },
    { id: "vad", source: "synthetic:64KiB" },
  ]);
  let harness: Harness | undefined;
  let browser: Browser | undefined;
  try {
    harness = await serveOnFakeGpu(gpu, ["--models", modelsFile]);
    const sampleMs = harness.service.services.config.sampleMs; // the harness's 100 ms
    const html = await (await harness.service.app.request("/")).text();
    const src = /<script type="module" src="([^"]+)">/.exec(html)?.[1];
    if (!src) throw new Error("The dashboard links no island bundle");
    const size = async (encoding: string) => {
      const response = await harness!.service.app.request(src, {
        headers: { "Accept-Encoding": encoding },
      });
      return (await response.arrayBuffer()).byteLength;
    };
    const javascript = {
      file: src,
      rawBytes: await size("identity"),
      gzipBytes: await size("gzip"),
      brotliBytes: await size("br"),
    };

    browser = await launch();
    const { page } = await openPage(browser, harness.url);
    await page.waitForSelector('[data-link="live"]');
    await page.waitForSelector(".pipelines[data-ready]");
    const measured = await measureScreenLatency(
      page,
      (i) => setUsedPercent(gpu, TOTAL, 35 + ((7 * i) % 50)), // never the starting 30 %
      changes,
    );
    const result: DashboardBench = {
      ranAt: new Date().toISOString(),
      latency: { ...measured, sampleMs, targetP95Ms: 250 },
      javascript,
      note: "chromium headless; fake NVML sampled every sampleMs, so about half a sample " +
        "interval of each latency is the monitor's polling, not the page",
    };
    await Deno.writeTextFile(OUTPUT, JSON.stringify(result, null, 2) + "\n");
    console.log(
      `Device change to screen: median ${measured.medianMs} ms, p95 ${measured.p95Ms} ms ` +
        `(${measured.changes} changes, sampling every ${sampleMs} ms); JavaScript ` +
        `${javascript.gzipBytes} B gzip (${javascript.rawBytes} B raw). Wrote ${OUTPUT.pathname}`,
    );
  } finally {
    await browser?.close();
    await stop(harness);
    gpu.close();
    await Deno.remove(modelsFile.replace(/\/models\.json$/, ""), { recursive: true });
  }
}

if (import.meta.main) await main();

/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core) against
 * a real server: the app from startService on Deno.serve, its GPU being the driver test
 * double. Checks hydration, the bar's colors, SSE-to-screen latency, the stale state and
 * its recovery, a lost device, and the no-GPU state; saves a screenshot of each.
 *
 * Without chromium or the built double (`deno task build:fake-gpu`) the tests are
 * skipped locally and fail when `CI` is set.
 * @module
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { type Config, parseConfig } from "../../core/config.ts";
import { type Service, startService } from "../../core/service.ts";
import { FAKE_GPU_PATH, FakeGpu, GiB } from "../fake_gpu.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("../artifacts/", import.meta.url);
const STREAM_PATH = "/api/v1/hardware/vram/stream";
const TOTAL = 24 * GiB;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const missing = [
  exists(CHROMIUM) ? null : `${CHROMIUM} (apt-get install -y chromium)`,
  exists(FAKE_GPU_PATH) ? null : `${FAKE_GPU_PATH} (deno task build:fake-gpu)`,
].filter(Boolean);
if (missing.length > 0) {
  const message = `Browser tests need ${missing.join(" and ")}`;
  if (Deno.env.get("CI")) throw new Error(message);
  console.warn(`${message}: skipped.`);
}
const ignore = missing.length > 0;

/** Lets a test cut every open SSE stream and refuse new ones, as a dying server would. */
class StreamCutter {
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

interface Harness {
  service: Service;
  server: Deno.HttpServer<Deno.NetAddr>;
  url: string;
  cutter: StreamCutter;
  dataDir: string;
}

async function serve(args: string[]): Promise<Harness> {
  const dataDir = await Deno.makeTempDir({ prefix: "headroom_browser_" });
  const result = parseConfig(
    [...args, "--data-dir", dataDir, "--sample-ms", "100", "--headroom", "2GiB"],
    new Map(),
  );
  const config = (result as { config: Config }).config;
  const service = await startService(config);
  const cutter = new StreamCutter();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    cutter.wrap(service.app.fetch),
  );
  return {
    service,
    server,
    url: `http://127.0.0.1:${server.addr.port}/`,
    cutter,
    dataDir,
  };
}

async function stop(harness: Harness | undefined) {
  if (!harness) return;
  harness.cutter.cutAll();
  await harness.server.shutdown();
  await harness.service.close();
  await Deno.remove(harness.dataDir, { recursive: true });
}

function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** A page that records console errors and uncaught exceptions. */
async function openPage(browser: Browser, url: string) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForSelector("[data-ready] .vram, [data-ready] .nogpu");
  return { page, errors };
}

async function screenshot(page: Page, name: string) {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const path = new URL(`${name}.png`, ARTIFACTS).pathname;
  await page.screenshot({ path });
  return path;
}

function setUsedPercent(gpu: FakeGpu, percent: number) {
  const bytes = Math.round((TOTAL * percent) / 100);
  gpu.setOtherUsed(0, bytes);
  return bytes;
}

/** Waits until device 0's meter shows `bytes`. */
async function waitForUsed(page: Page, bytes: number, timeout = 5000) {
  await page.waitForSelector(`[data-device="0"] [role="meter"][aria-valuenow="${bytes}"]`, {
    timeout,
  });
}

function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

Deno.test({
  name: "dashboard - live VRAM view with a GPU (fake NVML)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const gpu = new FakeGpu({ isolate: true });
    gpu.setDeviceCount(2);
    gpu.setTotal(0, TOTAL);
    gpu.setName(0, "NVIDIA L4 (test double)");
    gpu.setTotal(1, 16 * GiB);
    gpu.setName(1, "NVIDIA T4 (test double)");
    gpu.setOtherUsed(1, 5 * GiB);
    gpu.setUtilization(0, 37, 20);
    gpu.setTemperature(0, 54);
    gpu.setDriverVersion("580.95.05");
    setUsedPercent(gpu, 30);
    let harness: Harness | undefined;
    let browser: Browser | undefined;
    try {
      harness = await serve([
        "--gpu",
        "nvidia",
        "--nvml-library",
        gpu.path,
        "--vram-budget",
        "90%",
      ]);
      browser = await launch();
      const { page, errors } = await openPage(browser, harness.url);
      const h = harness;

      await t.step("hydrates, names the device, logs no console errors", async () => {
        await page.waitForSelector('[data-link="live"]');
        assert.ok(await page.isVisible("text=NVIDIA L4 (test double)"));
        assert.equal(await page.locator("[data-ready]").count(), 2);
        const meter = page.locator('[data-device="0"] [role="meter"]');
        assert.equal(await meter.getAttribute("aria-valuemax"), String(TOTAL));
        assert.match((await meter.getAttribute("aria-valuetext")) ?? "", /of 24\.0 GiB used/);
        await page.waitForSelector('.history[data-status="ready"] canvas');
        assert.deepEqual(errors, []);
      });

      await t.step(
        "the bar is green, amber, red by use, with a critical warning from 90 %",
        async () => {
          for (
            const [percent, level, color] of [
              [50, "ok", "--ok"],
              [70, "warn", "--warn"],
              [85, "high", "--high"],
              [95, "critical", "--high"],
            ] as const
          ) {
            const bytes = setUsedPercent(gpu, percent);
            await waitForUsed(page, bytes);
            const bar = page.locator('[data-device="0"]');
            assert.equal(await bar.getAttribute("data-level"), level, `${percent} %`);
            const colors = await page.evaluate((variable) => {
              const fill = getComputedStyle(
                document.querySelector('[data-device="0"] .vram-fill')!,
              ).fill;
              const probe = document.createElement("span");
              probe.style.color = `var(${variable})`;
              document.body.append(probe);
              const expected = getComputedStyle(probe).color;
              probe.remove();
              return { fill, expected };
            }, color);
            assert.equal(colors.fill, colors.expected, `${percent} % is drawn in ${color}`);
            const critical = await bar.locator(".vram-alert-critical").count();
            assert.equal(
              critical,
              level === "critical" ? 1 : 0,
              `critical warning at ${percent} %`,
            );
            if (percent === 85) await screenshot(page, "dashboard-85-percent");
          }
          await screenshot(page, "dashboard-critical");
          await page.hover('[data-device="0"] [role="meter"]');
          await page.waitForSelector("#vram-tip-0", { state: "visible" });
          await screenshot(page, "dashboard-tooltip");
          await page.mouse.move(0, 700);
        },
      );

      await t.step("a change of used memory reaches the screen within 1 s over SSE", async () => {
        await page.evaluate(() => {
          const w = window as unknown as { seen: Map<string, number> };
          w.seen = new Map();
          const meter = document.querySelector('[data-device="0"] [role="meter"]')!;
          new MutationObserver(() => {
            const value = meter.getAttribute("aria-valuenow")!;
            if (w.seen.has(value)) return;
            w.seen.set(value, -1);
            // On screen = the frame after the DOM changed.
            requestAnimationFrame(() =>
              w.seen.set(value, performance.timeOrigin + performance.now())
            );
          }).observe(meter, { attributes: true, attributeFilter: ["aria-valuenow"] });
        });
        const latencies: number[] = [];
        for (let i = 0; i < 20; i++) {
          // Pace the changes past the stream's 4-a-second cap, so each one is timed alone.
          await new Promise((resolve) => setTimeout(resolve, 300));
          const percent = 30 + 2 * i + (i % 2) * 15;
          const changedAt = performance.timeOrigin + performance.now();
          const bytes = setUsedPercent(gpu, percent);
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
        const result = {
          changes: latencies.length,
          sampleMs: h.service.services.config.sampleMs,
          medianMs: Math.round(quantile(sorted, 0.5)),
          p95Ms: Math.round(quantile(sorted, 0.95)),
          maxMs: Math.round(sorted.at(-1)!),
          latenciesMs: latencies.map((ms) => Math.round(ms)),
          note: "fake NVML sampled every sampleMs; change → sample → SSE → signal → next frame",
        };
        await Deno.mkdir(ARTIFACTS, { recursive: true });
        await Deno.writeTextFile(
          new URL("sse_latency.json", ARTIFACTS),
          JSON.stringify(result, null, 2) + "\n",
        );
        console.log(`SSE to screen: median ${result.medianMs} ms, p95 ${result.p95Ms} ms`);
        assert.ok(result.p95Ms < 1000, `p95 ${result.p95Ms} ms`);
        await waitForUsed(page, setUsedPercent(gpu, 62));
        await screenshot(page, "dashboard-live");
        await page.emulateMedia({ colorScheme: "dark" });
        await page.waitForSelector('.history[data-theme="dark"][data-status="ready"]');
        await screenshot(page, "dashboard-live-dark");
        await page.emulateMedia({ colorScheme: "light" });
        await page.waitForSelector('.history[data-theme="light"][data-status="ready"]');
      });

      await t.step("a dropped stream shows stale data, polls, and recovers", async () => {
        h.cutter.blocked = true;
        assert.ok(h.cutter.cutAll() >= 1, "the page had a stream open");
        await page.waitForSelector('[data-link="stale"]', { timeout: 3000 });
        assert.match(await page.locator(".link").innerText(), /Stale — reconnecting/);
        await screenshot(page, "dashboard-stale");
        // While the stream is down the page polls every 3 s.
        const bytes = setUsedPercent(gpu, 44);
        await waitForUsed(page, bytes, 4000);
        assert.equal(await page.locator('[data-link="stale"]').count(), 1);
        h.cutter.blocked = false;
        await page.waitForSelector('[data-link="live"]', { timeout: 10_000 });
        const again = setUsedPercent(gpu, 48);
        await waitForUsed(page, again, 1000);
      });

      await t.step("a lost device says so and keeps its last figures", async () => {
        gpu.setLost(0, true);
        await page.waitForSelector('[data-device="0"][data-state="lost"]');
        assert.match(
          await page.locator('[data-device="0"] .vram-alert-lost').innerText(),
          /Device lost/,
        );
        await screenshot(page, "dashboard-lost");
        gpu.setLost(0, false);
        await page.waitForSelector('[data-device="0"][data-state="ok"]');
      });
    } finally {
      await browser?.close();
      await stop(harness);
      gpu.close();
    }
  },
});

Deno.test({
  name: "dashboard - without a GPU it says so and that pipelines run on the CPU",
  ignore: !exists(CHROMIUM),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    let harness: Harness | undefined;
    let browser: Browser | undefined;
    try {
      harness = await serve(["--gpu", "cpu"]);
      browser = await launch();
      const { page, errors } = await openPage(browser, harness.url);
      const text = await page.locator(".nogpu").innerText();
      assert.match(text, /No GPU in use/);
      assert.match(text, /on the CPU/);
      assert.match(text, /HEADROOM_GPU=cpu/);
      assert.equal(await page.locator('.history[data-status="none"]').count(), 1);
      await page.waitForSelector('[data-link="live"]');
      await screenshot(page, "dashboard-no-gpu");
      assert.deepEqual(errors, []);
    } finally {
      await browser?.close();
      await stop(harness);
    }
  },
});

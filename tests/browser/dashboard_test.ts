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
import type { Browser } from "playwright-core";
import { FakeGpu, GiB } from "../fake_gpu.ts";
import { requireChromium, requireFakeGpu } from "../_requires.ts";
import {
  ARTIFACTS,
  type Harness,
  launch,
  measureScreenLatency,
  openPage,
  screenshot,
  serve,
  serveOnFakeGpu,
  setUsedPercent as setShare,
  stop,
  waitForUsed,
} from "./_harness.ts";

const TOTAL = 24 * GiB;
// chromium (and, for the GPU views, the driver double): skipped here when missing, a
// failure under CI.
const chromium = requireChromium();
const ignore = !chromium || !requireFakeGpu();

function setUsedPercent(gpu: FakeGpu, percent: number) {
  return setShare(gpu, TOTAL, percent);
}

Deno.test({
  name: "dashboard - live VRAM view with a GPU (fake NVML)",
  ignore,
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
      harness = await serveOnFakeGpu(gpu);
      browser = await launch();
      const { page, errors } = await openPage(browser, harness.url);
      const h = harness;

      await t.step("hydrates, names the device, logs no console errors", async () => {
        await page.waitForSelector('[data-link="live"]');
        assert.ok(await page.isVisible("text=NVIDIA L4 (test double)"));
        assert.equal(await page.locator("[data-ready]").count(), 4);
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
        const measured = await measureScreenLatency(
          page,
          (i) => setUsedPercent(gpu, 30 + 2 * i + (i % 2) * 15),
        );
        const result = {
          ...measured,
          sampleMs: h.service.services.config.sampleMs,
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
  ignore: !chromium,
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

/**
 * The dashboard at 700 px wide (no control clipped), the critical warning at 89.6 %
 * (shown "90 %", so critical), and a server that stops: the page says "Server stopped" at
 * once, from the SSE stream's shutdown event, not after a timeout. Saves screenshots.
 *
 * Same skip rules as dashboard_test.ts (chromium and the built driver double).
 * @module
 */
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { FakeGpu, GiB } from "../fake_gpu.ts";
import { requireChromium, requireFakeGpu } from "../_requires.ts";
import {
  type Harness,
  launch,
  openPage,
  screenshot,
  serveOnFakeGpu,
  stop,
  waitForUsed,
  writeModelsFile,
} from "./_harness.ts";

// chromium and the driver double: skipped here when missing, a failure under CI.
const ignore = ![requireChromium(), requireFakeGpu()].every(Boolean);
const TOTAL = 24 * GiB;

Deno.test({
  name:
    "dashboard - at 700 px no control is clipped; 89.6 % reads 90 % and is critical; Server stopped",
  ignore,
  async fn(t) {
    const gpu = new FakeGpu({ isolate: true });
    gpu.setTotal(0, TOTAL);
    gpu.setName(0, "NVIDIA L4 (test double)");
    let harness: Harness | undefined;
    let browser: Browser | undefined;
    const modelsFile = await writeModelsFile([
      { id: "captioner-large", name: "Captioner (large)", source: "synthetic:64KiB" },
      { id: "ocr-det", source: "synthetic:64KiB" },
    ]);
    try {
      harness = await serveOnFakeGpu(gpu, ["--models", modelsFile]);
      const h = harness;
      await h.service.services.scheduler.load("ocr-det", "cpu");
      browser = await launch();
      const { page, errors } = await openPage(browser, h.url, { width: 700, height: 900 });
      await page.waitForSelector(".pipelines[data-ready]");
      await page.waitForSelector('[data-link="live"]');

      await t.step("at 700 px every control is whole and inside the page", async () => {
        const clipped = await page.evaluate(() => {
          const problems: string[] = [];
          const width = document.documentElement.clientWidth;
          for (
            const el of document.querySelectorAll<HTMLElement>(
              "button, select, input, a, [role=meter], th, .vram-percent",
            )
          ) {
            if (el.offsetParent === null) continue; // not shown
            const name = `${el.tagName.toLowerCase()} "${
              (el.innerText || el.getAttribute("aria-label") || "").trim().slice(0, 30)
            }"`;
            const rect = el.getBoundingClientRect();
            if (el.scrollWidth > el.clientWidth + 1) {
              problems.push(`${name}: text ${el.scrollWidth} px in ${el.clientWidth} px`);
            }
            if (rect.right > width + 0.5 || rect.left < -0.5) {
              problems.push(`${name}: ${rect.left}–${rect.right} px, page is ${width} px`);
            }
            // Hidden by an ancestor's overflow (a table cell or a scroller cutting it).
            for (let up = el.parentElement; up; up = up.parentElement) {
              const style = getComputedStyle(up);
              if (style.overflowX === "visible") continue;
              const box = up.getBoundingClientRect();
              if (rect.right > box.right + 0.5 || rect.left < box.left - 0.5) {
                problems.push(`${name}: cut by ${up.tagName.toLowerCase()}.${up.className}`);
              }
              break;
            }
          }
          if (document.documentElement.scrollWidth > width) {
            problems.push(`the page scrolls sideways (${document.documentElement.scrollWidth} px)`);
          }
          return problems;
        });
        await screenshot(page, "dashboard-700px", { fullPage: true });
        assert.deepEqual(clipped, []);
      });

      await t.step("89.6 % reads 90 % and shows the critical warning", async () => {
        const bytes = Math.round(TOTAL * 0.896);
        gpu.setOtherUsed(0, bytes);
        await waitForUsed(page, bytes);
        const bar = page.locator('[data-device="0"]');
        assert.equal(await bar.locator(".vram-percent").innerText(), "90 %");
        assert.equal(await bar.getAttribute("data-level"), "critical");
        assert.equal(await bar.locator(".vram-alert-critical").count(), 1);
        assert.match(await bar.locator(".vram-alert-critical").innerText(), /Critical: 90 % used/);
      });

      await t.step("a stopping server: the page shows Server stopped at once", async () => {
        const started = performance.now();
        h.service.beginShutdown();
        await page.waitForSelector('[data-link="stopped"]', { timeout: 2000 });
        const ms = performance.now() - started;
        assert.match(await page.locator(".link").innerText(), /Server stopped/);
        console.log(`"Server stopped" on the page ${ms.toFixed(0)} ms after the shutdown began`);
        // The longer status lines sit beside the bars, not over them.
        const overlap = await page.evaluate(() => {
          const side = document.querySelector(".status-side")!.getBoundingClientRect();
          const bars = document.querySelector(".devices")!.getBoundingClientRect();
          const apart = side.left >= bars.right || side.top >= bars.bottom ||
            side.bottom <= bars.top;
          return apart ? null : { side: side.toJSON(), bars: bars.toJSON() };
        });
        assert.equal(overlap, null, JSON.stringify(overlap));
        await screenshot(page, "dashboard-server-stopped");
        assert.deepEqual(errors.filter((e) => !/EventSource|net::/.test(e)), []);
      });
    } finally {
      await browser?.close();
      await stop(harness);
      gpu.close();
      await Deno.remove(modelsFile.replace(/\/models\.json$/, ""), { recursive: true });
    }
  },
});

/**
 * The pipelines table, Test Load and the event log in a real browser against a real
 * server with small generated models: "—" before any load, the token asked once, a row
 * turning to CPU after Load, both entries of a load and unload in the log (newest
 * first), a test load whose figures reach each row from the live stream before it ends, and,
 * on the GPU path (the driver double for the device, WebGPU's software adapter for the
 * sessions), the placement dots and an eviction marked in the log and on the chart.
 * Saves a screenshot of each state; with HEADROOM_UPDATE_DOCS=1 the GPU one also refreshes
 * docs/dashboard.png.
 *
 * Same skip rules as dashboard_test.ts (chromium and the built driver double).
 * @module
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import type { ModelRow, VramReport } from "../../core/types.ts";
import { FakeGpu, GiB } from "../fake_gpu.ts";
import { requireChromium, requireFakeGpu, requireWebGpu } from "../_requires.ts";
import {
  type Harness,
  launch,
  openPage,
  screenshot,
  serve,
  serveOnFakeGpu,
  stop,
  waitForUsed,
  writeModelsFile,
} from "./_harness.ts";

// chromium and the driver double: skipped here when missing, a failure under CI.
const ignore = ![requireChromium(), requireFakeGpu()].every(Boolean);
// The GPU test's sessions run on WebGPU in Deno (a software adapter is fine).
const webgpu = await requireWebGpu();
const TOKEN = "browser-test-token-0123456789";
const DOCS_SCREENSHOT = new URL("../../docs/dashboard.png", import.meta.url).pathname;

const MODELS = [
  { id: "captioner", name: "Captioner", source: "synthetic:4MiB" },
  { id: "ocr-det", source: "synthetic:1MiB" },
  { id: "vad", source: "synthetic:64KiB" },
];

/** POSTs to the harness's API from the test (with the token). */
async function post(h: Harness, path: string, body: unknown = {}): Promise<Response> {
  return await fetch(new URL(path, h.url), {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  });
}

async function postOk(h: Harness, path: string, body: unknown = {}): Promise<ModelRow> {
  const response = await post(h, path, body);
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json();
}

const row = (page: Page, id: string) => page.locator(`tr[data-model="${id}"]`);
const cell = (page: Page, id: string, col: string) =>
  page.locator(`tr[data-model="${id}"] [data-col="${col}"]`);

/** The messages of the event log, top (newest) first. */
async function eventMessages(page: Page): Promise<string[]> {
  return await page.locator(".event .event-msg").allInnerTexts();
}

Deno.test({
  name: "pipelines - table, token, actions, test load from the stream, event log (CPU)",
  ignore,
  async fn(t) {
    let harness: Harness | undefined;
    let browser: Browser | undefined;
    const modelsFile = await writeModelsFile(MODELS);
    try {
      harness = await serve(["--gpu", "cpu", "--models", modelsFile, "--token", TOKEN]);
      const h = harness;
      browser = await launch();
      const { page, errors } = await openPage(browser, h.url);
      await page.waitForSelector(".pipelines[data-ready]");
      await page.waitForSelector(".events[data-ready]");

      await t.step("every model is listed with — before any load", async () => {
        for (const { id } of MODELS) {
          assert.equal(await row(page, id).getAttribute("data-indicator"), "unloaded");
          // No GPU here: the table leaves the VRAM column out.
          assert.equal(await cell(page, id, "vram").count(), 0);
          for (const col of ["ram", "load"]) {
            assert.equal(await cell(page, id, col).innerText(), "—", `${id} ${col}`);
          }
        }
        assert.equal(await page.locator(".ptable tbody tr").count(), MODELS.length);
        await screenshot(page, "pipelines-never-loaded");
        assert.deepEqual(errors, []);
      });

      await t.step("Load asks for the token once, then the row turns to CPU", async () => {
        await row(page, "vad").getByRole("button", { name: "Load vad on the CPU" }).click();
        const form = page.locator(".token-form");
        await form.waitFor();
        assert.match(await form.innerText(), /needs its API token/);
        await page.keyboard.type(TOKEN); // the field has the focus
        await screenshot(page, "pipelines-token");
        await page.keyboard.press("Enter");
        await page.waitForSelector('tr[data-model="vad"][data-state="cpu"]', { timeout: 60_000 });
        assert.equal(await form.count(), 0);
        assert.equal(await row(page, "vad").getAttribute("data-indicator"), "cpu");
        assert.notEqual(await cell(page, "vad", "load").innerText(), "—");
        await page.waitForSelector('tr[data-model="vad"] .engine[data-engine="native"]');
        assert.match(
          await page.locator(".status-cpu-engine").innerText(),
          /CPU engine: native/,
          "the engine in use shows beside the device",
        );
        // The token is kept for the tab: the next action goes straight through.
        await row(page, "vad").getByRole("button", { name: "Pin vad" }).click();
        await page.waitForSelector('tr[data-model="vad"] .flag-pin');
        assert.equal(await form.count(), 0, "asked only once");
      });

      await t.step("a load and an unload both show in the event log, newest first", async () => {
        await page.waitForFunction(() =>
          document.querySelector(".event")?.textContent?.includes("vad pinned")
        );
        await postOk(h, "/api/v1/models/vad/unload");
        await page.waitForSelector('tr[data-model="vad"][data-state="unloaded"]');
        await page.waitForFunction(() =>
          document.querySelector(".event .event-msg")?.textContent?.includes("vad: unloaded")
        );
        const messages = await eventMessages(page);
        const unload = messages.findIndex((m) => m.startsWith("vad: unloaded"));
        const load = messages.findIndex((m) => m.startsWith("vad: load:cpu"));
        assert.equal(unload, 0, messages.join("\n"));
        assert.ok(load > unload, `the load is older than the unload: ${messages.join("\n")}`);
        assert.equal(
          await page.locator('.event[data-kind="transition"] .tag').first().innerText(),
          "TRANSITION",
        );
        // Unloaded after a load: last-known figures in gray italic.
        assert.equal(await cell(page, "vad", "load").getAttribute("class"), "num fig fig-last");
        // The filter keeps one kind.
        await page.selectOption(".events select", "info");
        assert.ok(await page.locator(".event").count() >= 1);
        assert.equal(await page.locator('.event:not([data-kind="info"])').count(), 0);
        await page.selectOption(".events select", "all");
      });

      await t.step("Test Load measures every row from the stream, then checks it", async () => {
        // No catalog fetch may help: the figures must come from the live stream's rows.
        let blocked = 0;
        await page.route("**/api/v1/models", (route) => {
          blocked++;
          return route.abort();
        });
        await page.evaluate((ids) => {
          const w = window as unknown as { firstFigure: Record<string, number>; doneAt: number };
          w.firstFigure = {};
          w.doneAt = 0;
          const table = document.querySelector(".pipelines")!;
          new MutationObserver(() => {
            const at = performance.now();
            for (const id of ids) {
              const text = document.querySelector(`tr[data-model="${id}"] [data-col="load"]`)
                ?.textContent;
              if (!(id in w.firstFigure) && text && text !== "—") w.firstFigure[id] = at;
            }
            if (!w.doneAt && table.getAttribute("data-test-load") === "done") w.doneAt = at;
          }).observe(table, {
            subtree: true,
            childList: true,
            characterData: true,
            attributes: true,
          });
        }, ["captioner", "ocr-det"]);
        const button = page.locator(".pipelines .panel-tools button");
        await button.click();
        await page.waitForSelector('.pipelines[data-test-load="running"]');
        assert.ok(await button.isDisabled(), "disabled while running");
        assert.match(await button.innerText(), /running/);
        await page.waitForSelector('tr[data-model="captioner"] .spinner');
        await screenshot(page, "pipelines-test-load-running");
        await page.waitForSelector('.pipelines[data-test-load="done"]', { timeout: 30_000 });
        const timing = await page.evaluate(() => {
          const w = window as unknown as { firstFigure: Record<string, number>; doneAt: number };
          return { firstFigure: w.firstFigure, doneAt: w.doneAt };
        });
        for (const id of ["captioner", "ocr-det"]) {
          assert.ok(
            timing.firstFigure[id] < timing.doneAt,
            `${id}'s figure showed before the end: ${JSON.stringify(timing)}`,
          );
        }
        for (const { id } of MODELS) {
          assert.equal(await row(page, id).getAttribute("data-run"), "ok", id);
          assert.equal(await row(page, id).locator(".run-ok").innerText(), "✓");
          assert.notEqual(await cell(page, id, "load").innerText(), "—", id);
          assert.notEqual(await cell(page, id, "ram").innerText(), "—", id);
        }
        assert.ok(!(await button.isDisabled()));
        assert.match(await page.locator(".run-summary").innerText(), /3 measured/);
        assert.equal(blocked, 0, "the table follows the stream's rows: it never refetches");
        await page.unroute("**/api/v1/models");
        assert.equal(await page.locator(".pipelines").getAttribute("data-status"), "ok");
        await screenshot(page, "pipelines-test-load-done");
      });

      await t.step("a second test load while one runs says it is already running", async () => {
        const running = await post(h, "/api/v1/models/test-load", { models: ["captioner"] });
        assert.equal(running.status, 200);
        const reader = running.body!.pipeThrough(new TextDecoderStream()).getReader();
        assert.match((await reader.read()).value ?? "", /"started"/);
        await page.locator(".pipelines .panel-tools button").click();
        await page.waitForSelector('.pipelines[data-test-load="error"]');
        assert.match(
          await page.locator(".pipelines .panel-error").first().innerText(),
          /already running/,
        );
        while (!(await reader.read()).done) { /* drain */ }
        await page.waitForSelector('tr[data-model="captioner"][data-state="unloaded"]');
      });

      await t.step("keyboard: the controls are reachable and show focus", async () => {
        await page.locator("body").focus();
        let reached = false;
        for (let i = 0; i < 30 && !reached; i++) {
          await page.keyboard.press("Tab");
          reached = await page.evaluate(() =>
            document.activeElement?.closest(".pipelines .actions") !== null
          );
        }
        assert.ok(reached, "Tab reaches a row's action buttons");
        const outline = await page.evaluate(() =>
          getComputedStyle(document.activeElement!).outlineStyle
        );
        assert.equal(outline, "solid");
      });

      await t.step("dark mode follows the system", async () => {
        await page.emulateMedia({ colorScheme: "dark" });
        const bg = await page.evaluate(() =>
          getComputedStyle(document.querySelector(".panel")!).backgroundColor
        );
        assert.equal(bg, "rgb(22, 27, 34)");
        await screenshot(page, "pipelines-dark", { fullPage: true });
        await page.emulateMedia({ colorScheme: "light" });
      });
      assert.deepEqual(errors.filter((e) => !/ERR_FAILED|401|409/.test(e)), []);
    } finally {
      await browser?.close();
      await stop(harness);
      await Deno.remove(modelsFile.replace(/\/models\.json$/, ""), { recursive: true });
    }
  },
});

Deno.test({
  name: "pipelines - GPU placement dots, an eviction in the log and on the chart",
  ignore: ignore || !webgpu,
  async fn(t) {
    const gpu = new FakeGpu({ isolate: true });
    gpu.setTotal(0, 24 * GiB);
    gpu.setName(0, "NVIDIA L4 (test double)");
    gpu.setOtherUsed(0, 7 * GiB);
    gpu.setUtilization(0, 41, 22);
    gpu.setTemperature(0, 58);
    gpu.setDriverVersion("580.95.05");
    let harness: Harness | undefined;
    let browser: Browser | undefined;
    const modelsFile = await writeModelsFile(MODELS);
    try {
      harness = await serveOnFakeGpu(gpu, ["--models", modelsFile]);
      const h = harness;
      const report: VramReport = await (await fetch(new URL("/api/v1/hardware/vram", h.url)))
        .json();
      if (report.source !== "nvml") throw new Error(`expected NVML, got ${report.source}`);
      // The sessions need a WebGPU adapter in Deno (a software one is fine).
      const first = await post(h, "/api/v1/models/captioner/load", { device: "gpu" });
      const loaded: ModelRow = await first.json();
      assert.equal(first.status, 200, JSON.stringify(loaded));
      assert.equal(loaded.placement, "gpu", "the sessions found no WebGPU adapter");
      browser = await launch();
      const { page, errors } = await openPage(browser, h.url, { width: 1440, height: 900 });
      await page.waitForSelector(".pipelines[data-ready]");

      await t.step("on the GPU and idle is amber, on the CPU gray, unloaded hollow", async () => {
        await page.waitForSelector('tr[data-model="captioner"][data-indicator="idle"]');
        assert.match(await cell(page, "captioner", "vram").innerText(), /MiB/);
        assert.equal(
          await cell(page, "captioner", "vram").getAttribute("class"),
          "num fig fig-live",
        );
        await postOk(h, "/api/v1/models/ocr-det/load", { device: "cpu" });
        await page.waitForSelector('tr[data-model="ocr-det"][data-indicator="cpu"]');
        assert.equal(await row(page, "vad").getAttribute("data-indicator"), "unloaded");
      });

      await t.step("an eviction shows in the log and as a mark on the chart", async () => {
        // Fill the device to 32 KiB above its 2 GiB headroom: vad (a 96 KiB estimate)
        // fits only once the idle captioner leaves the GPU.
        const full = 24 * GiB - 2 * GiB - 32 * 1024;
        gpu.setOtherUsed(0, full);
        await waitForUsed(page, full); // the monitor has sampled it
        const placed = await postOk(h, "/api/v1/models/vad/load", { device: "gpu" });
        assert.equal(placed.placement, "gpu");
        await page.waitForSelector('.event[data-kind="eviction"]', { timeout: 20_000 });
        assert.match(
          await page.locator('.event[data-kind="eviction"] .event-msg').first().innerText(),
          /evicted captioner/,
        );
        await page.waitForSelector('.history:not([data-marks="0"])');
        await page.waitForSelector('tr[data-model="captioner"][data-indicator="cpu"]');
        // An in-flight request makes a pipeline active: green.
        h.service.services.scheduler.markActive("vad");
        gpu.setOtherUsed(0, 9 * GiB);
        await page.waitForSelector('tr[data-model="vad"][data-indicator="active"]');
        await page.mouse.move(0, 899);
        await screenshot(page, "pipelines-gpu", { fullPage: true });
        // The README's picture is refreshed on request only: a test run leaves the tree clean.
        if (Deno.env.get("HEADROOM_UPDATE_DOCS") === "1") {
          await page.screenshot({ path: DOCS_SCREENSHOT, fullPage: true });
        }
        h.service.services.scheduler.markIdle("vad");
      });
      assert.deepEqual(errors, []);
    } finally {
      await browser?.close();
      await stop(harness);
      gpu.close();
      await Deno.remove(modelsFile.replace(/\/models\.json$/, ""), { recursive: true });
    }
  },
});

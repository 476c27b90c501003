/**
 * A headless screenshot of the dashboard, the way docs/dashboard.md says to take one:
 * `chromium --headless --screenshot --virtual-time-budget=…` on `/?settle`. Chromium's
 * virtual time waits for the network to go quiet; the live stream never does, so without
 * `?settle` the command never finishes. With it the page shows the report it was
 * rendered with, says it is a still picture, and the screenshot is written in seconds.
 *
 * Without chromium the test is skipped locally and fails when `CI` is set.
 * @module
 */
import assert from "node:assert/strict";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../../scripts/_lib/chromium.ts";
import { serveHeadroom } from "../../server/serve_headroom.ts";
import { requireChromium } from "../_requires.ts";
import { ARTIFACTS } from "./_harness.ts";

const chromium = requireChromium();

/** Seconds the screenshot may take before the test calls it hung (it takes ~5 s here). */
const LIMIT_S = 45;

Deno.test({
  name: "dashboard - a headless --virtual-time-budget screenshot of /?settle finishes",
  ignore: !chromium,
  fn: async () => {
    await using headroom = await serveHeadroom({
      config: { gpu: "cpu" },
      tempPrefix: "headroom-screenshot-",
    });
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const file = new URL("dashboard_settle.png", ARTIFACTS).pathname;
    await Deno.remove(file).catch(() => {});
    const profile = await Deno.makeTempDir({ prefix: "headroom-chromium-" });
    try {
      const child = new Deno.Command(CHROMIUM_PATH, {
        args: [
          ...CHROMIUM_ARGS,
          `--user-data-dir=${profile}`,
          `--screenshot=${file}`,
          "--window-size=1280,900",
          "--virtual-time-budget=3000",
          `${headroom.url}/?settle`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), LIMIT_S * 1000);
      const status = await child.status;
      clearTimeout(timer);
      assert.ok(status.signal === null, `chromium was still busy after ${LIMIT_S} s`);
      const png = await Deno.readFile(file);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG was written");
      assert.ok(png.length > 10_000, `${png.length} bytes: the page, not a blank`);
    } finally {
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * Renders the OCR test fixture: two lines of known printed English text, black on
 * white, with headless Chromium, saved as tests/fixtures/ocr_hello.png.
 *
 * Run: `deno run --allow-all scripts/make_ocr_fixture.ts` (needs Debian's `chromium`).
 * @module
 */
import { launchChromium } from "./_lib/chromium.ts";

/** The text the fixture shows, one entry a line; the OCR test expects exactly this. */
export const OCR_FIXTURE_LINES = ["HELLO WORLD 2026", "Headroom keeps VRAM"] as const;

/** Where the fixture is written. */
export const OCR_FIXTURE_PATH = new URL("../tests/fixtures/ocr_hello.png", import.meta.url);

const HTML = `<!doctype html><html><body style="margin:0;background:#fff">
<div id="text" style="display:inline-block;padding:24px 32px;background:#fff;color:#000;
  font:32px 'DejaVu Sans',sans-serif;line-height:56px">
${OCR_FIXTURE_LINES.map((line) => `<div>${line}</div>`).join("")}
</div></body></html>`;

if (import.meta.main) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ deviceScaleFactor: 1 });
    await page.setContent(HTML);
    const png = await page.locator("#text").screenshot({ type: "png" });
    await Deno.writeFile(OCR_FIXTURE_PATH, png);
    console.log(`wrote ${OCR_FIXTURE_PATH.pathname} (${png.byteLength} bytes)`);
  } finally {
    await browser.close();
  }
}

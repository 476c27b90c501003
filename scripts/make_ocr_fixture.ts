/**
 * Renders the OCR test fixtures: lines of known printed English text, black on white,
 * with headless Chromium: two lines in tests/fixtures/ocr_hello.png, and an invoice of
 * lines of many widths in tests/fixtures/ocr_invoice.png (the recognizer runs all of an
 * image's lines as one batch padded to the widest: the invoice checks that reads right).
 *
 * Run: `deno run --allow-all scripts/make_ocr_fixture.ts` (needs Debian's `chromium`).
 * @module
 */
import { launchChromium } from "./_lib/chromium.ts";

/** The text the fixture shows, one entry a line; the OCR test expects exactly this. */
export const OCR_FIXTURE_LINES = ["HELLO WORLD 2026", "Headroom keeps VRAM"] as const;

/** Where the fixture is written. */
export const OCR_FIXTURE_PATH = new URL("../tests/fixtures/ocr_hello.png", import.meta.url);

/** The invoice fixture's lines, top to bottom. */
export const OCR_INVOICE_LINES = [
  "INVOICE 2026-0412",
  "Headroom Compute Ltd",
  "GPU hours 14.00",
  "Storage 3.50",
  "Tax 1.40",
  "TOTAL 18.90",
  "Paid by card on 2 December 2026",
] as const;

/** Where the invoice fixture is written. */
export const OCR_INVOICE_PATH = new URL("../tests/fixtures/ocr_invoice.png", import.meta.url);

const html = (lines: readonly string[]) =>
  `<!doctype html><html><body style="margin:0;background:#fff">
<div id="text" style="display:inline-block;padding:24px 32px;background:#fff;color:#000;
  font:32px 'DejaVu Sans',sans-serif;line-height:56px">
${lines.map((line) => `<div>${line}</div>`).join("")}
</div></body></html>`;

if (import.meta.main) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ deviceScaleFactor: 1 });
    for (
      const [lines, path] of [
        [OCR_FIXTURE_LINES, OCR_FIXTURE_PATH],
        [OCR_INVOICE_LINES, OCR_INVOICE_PATH],
      ] as const
    ) {
      await page.setContent(html(lines));
      const png = await page.locator("#text").screenshot({ type: "png" });
      await Deno.writeFile(path, png);
      console.log(`wrote ${path.pathname} (${png.byteLength} bytes)`);
    }
  } finally {
    await browser.close();
  }
}

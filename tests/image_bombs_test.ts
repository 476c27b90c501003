// Hostile images through every route that decodes one (issue 20 finding 2, issue 21 item 3):
// PNG decompression bombs (interlaced, where pngjs inflates with no cap, and plain), a JPEG
// whose frame declares 15 components, and corrupt files, sent as a raw OCR body, as a
// multipart field and as a chat `data:` URL. Each answers a 400 that names the cause, the
// process's RSS stays bounded, and the service goes on answering.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { serveHeadroom } from "../server/serve_headroom.ts";
import { corruptJpeg, corruptPng, jpegBomb, peakRssGrowth, pngBomb } from "./_image_bombs.ts";

/** At most this much RSS growth for all the hostile images together (main: +2.6 GB). */
const RSS_BOUND = 200 * 2 ** 20;

/** The three ways an image reaches the OCR chain. */
const ROUTES = {
  raw: (bytes: Uint8Array<ArrayBuffer>, type: string): [string, RequestInit] => [
    "/api/v1/ocr",
    { method: "POST", headers: { "content-type": type }, body: bytes },
  ],
  multipart: (bytes: Uint8Array<ArrayBuffer>, type: string): [string, RequestInit] => {
    const form = new FormData();
    form.set("image", new File([bytes], "image", { type }));
    return ["/api/v1/ocr", { method: "POST", body: form }];
  },
  chat: (bytes: Uint8Array, type: string): [string, RequestInit] => [
    "/v1/chat/completions",
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "ocr",
        messages: [{
          role: "user",
          content: [{
            type: "image_url",
            image_url: { url: `data:${type};base64,${Buffer.from(bytes).toString("base64")}` },
          }],
        }],
      }),
    },
  ],
};

const IMAGES: [string, Uint8Array<ArrayBuffer>, string, RegExp][] = [
  [
    "interlaced PNG bomb",
    pngBomb({ width: 64, height: 64, interlaced: true, mib: 256 }),
    "image/png",
    /inflates past the 16504 bytes its 64x64 header allows/,
  ],
  [
    "plain PNG bomb",
    pngBomb({ width: 64, height: 64, interlaced: false, mib: 256 }),
    "image/png",
    /inflates past the 16448 bytes its 64x64 header allows/,
  ],
  ["JPEG bomb", jpegBomb(15), "image/jpeg", /not a valid JPEG .*declares 15 color components/],
  ["corrupt PNG", corruptPng(), "image/png", /not a valid PNG .*first chunk is not a 13-byte IHDR/],
  ["corrupt JPEG", corruptJpeg(), "image/jpeg", /not a valid JPEG .*no JPEG marker/],
];

Deno.test("image bombs - OCR, multipart and chat refuse each with a 400, RSS stays bounded", async () => {
  await using s = await (async () => {
    const headroom = await serveHeadroom({ config: { gpu: "cpu" }, tempPrefix: "headroom-bomb-" });
    return { ...headroom, [Symbol.asyncDispose]: headroom.close };
  })();
  // Load the chain first, so the RSS measured is the images' alone.
  for (const id of ["ocr-det", "ocr-cls", "ocr-rec"]) {
    await s.service.services.scheduler.load(id, "cpu");
  }
  const { bytes } = await peakRssGrowth(async () => {
    for (const [what, image, type, expected] of IMAGES) {
      for (const [route, build] of Object.entries(ROUTES)) {
        const [path, init] = build(image, type);
        const answer = await fetch(`${s.url}${path}`, init);
        const body = await answer.json();
        assert.equal(answer.status, 400, `${what} via ${route}: ${JSON.stringify(body)}`);
        assert.match(body.error.message, expected, `${what} via ${route}`);
      }
    }
  });
  assert.ok(
    bytes < RSS_BOUND,
    `RSS grew by ${(bytes / 2 ** 20).toFixed(0)} MiB over ${IMAGES.length * 3} hostile images`,
  );
  const health = await fetch(`${s.url}/api/v1/health`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
});

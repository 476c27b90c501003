/**
 * The islands runtime without a browser: markers and the props script, escaping, the
 * content-hashed immutable bundle, and the page security headers.
 * @module
 */
import assert from "node:assert/strict";
import { h } from "preact";
import { signal } from "@preact/signals";
import { builtFile, type PageAssets } from "../runtime/server/bundle.ts";
import { pageHtml } from "../runtime/server/page.ts";
import { createIslandRegistry, renderBody } from "../runtime/server/render.tsx";
import { IMMUTABLE, pickEncoding } from "../runtime/server/serve.ts";
import { PROPS_SCRIPT_ID } from "../runtime/protocol.ts";
import { parseConfig } from "../core/config.ts";
import { startService } from "../server/service.ts";

function Echo({ text }: { text: string }) {
  return h("p", { class: "echo" }, text);
}
function Counter({ count }: { count: { value: number } }) {
  return h("output", null, String(count.value));
}
function Outer({ label }: { label: string }) {
  return h("div", null, label, h(Echo, { text: "inner" }));
}
function Plain() {
  return h("main", null, h("h1", null, "Nothing interactive"), h(Echo, { text: "not an island" }));
}

const registry = createIslandRegistry({ Echo, Counter, Outer });

async function fakeAssets(): Promise<PageAssets> {
  const encoder = new TextEncoder();
  const script = await builtFile("islands", "js", encoder.encode("console.log(1)"));
  const style = await builtFile("styles", "css", encoder.encode("body{}"));
  return {
    script,
    style,
    files: new Map([[script.name, script], [style.name, style]]),
  };
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

function propsOf(html: string): unknown {
  const open = `<script type="application/json" id="${PROPS_SCRIPT_ID}">`;
  const start = html.indexOf(open);
  assert.notEqual(start, -1, "no props script");
  const end = html.indexOf("</script>", start);
  return JSON.parse(html.slice(start + open.length, end));
}

Deno.test("islands - a page without islands ships no JavaScript", async () => {
  const html = pageHtml(h(Plain, {}), "Plain", createIslandRegistry({}), await fakeAssets());
  assert.equal(count(html, "<script"), 0);
  assert.match(html, /<link rel="stylesheet" href="\/static\/build\/styles-[0-9a-f]{16}\.css">/);
});

Deno.test("islands - an island is wrapped in markers and its props go in one JSON script", async () => {
  const html = pageHtml(
    h("div", null, h(Echo, { text: "a" }), h(Echo, { text: "b" })),
    "Two",
    registry,
    await fakeAssets(),
  );
  assert.ok(html.includes('<!--island:Echo:0--><p class="echo">a</p><!--/island:0-->'));
  assert.ok(html.includes('<!--island:Echo:1--><p class="echo">b</p><!--/island:1-->'));
  assert.deepEqual(propsOf(html), [{ text: "a" }, { text: "b" }]);
  assert.match(html, /<script type="module" src="\/static\/build\/islands-[0-9a-f]{16}\.js">/);
  assert.equal(count(html, "<script"), 2);
});

Deno.test("islands - a prop cannot break out of the props script", async () => {
  const evil = `</script><script>alert(1)</script><!-- </SCRIPT > & \u2028`;
  const html = pageHtml(h(Echo, { text: evil }), "Evil", registry, await fakeAssets());
  // Only the props script and the bundle script: no third one from the prop.
  assert.equal(count(html.toLowerCase(), "<script"), 2);
  assert.equal(count(html.toLowerCase(), "</script"), 2);
  assert.equal(count(html, "<!--"), 2, "only the two island markers open comments");
  assert.deepEqual(propsOf(html), [{ text: evil }]);
});

Deno.test("islands - a signal prop renders and is serialized by its value", async () => {
  const { html: body } = renderBody(h(Counter, { count: signal(41) }), registry);
  assert.ok(body.includes("<output>41</output>"));
  const html = pageHtml(h(Counter, { count: signal(41) }), "S", registry, await fakeAssets());
  assert.deepEqual(propsOf(html), [{ count: { $signal: 41 } }]);
});

Deno.test("islands - a function prop is refused with the island's and the prop's name", async () => {
  const assets = await fakeAssets();
  assert.throws(
    () => pageHtml(h(Echo, { text: "x", onClick: () => {} } as never), "F", registry, assets),
    /Island "Echo": prop "onClick" is a function/,
  );
});

Deno.test("islands - an island inside another renders as part of the outer one", () => {
  const { html, islands } = renderBody(h(Outer, { label: "outer" }), registry);
  assert.deepEqual(islands.map((i) => i.name), ["Outer"]);
  assert.equal(
    html,
    '<!--island:Outer:0--><div>outer<p class="echo">inner</p></div><!--/island:0-->',
  );
});

Deno.test("islands - Accept-Encoding picks br, then gzip, honoring q=0", () => {
  assert.equal(pickEncoding("gzip, deflate, br"), "br");
  assert.equal(pickEncoding("gzip, br;q=0"), "gzip");
  assert.equal(pickEncoding("identity"), "identity");
  assert.equal(pickEncoding(null), "identity");
  assert.equal(pickEncoding("*"), "br");
});

Deno.test("islands - the dashboard links a content-hashed bundle served immutable and compressed", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "headroom_islands_test_" });
  const { config } = parseConfig(["--gpu", "cpu", "--data-dir", dataDir], new Map()) as {
    help: false;
    config: import("../core/config.ts").Config;
  };
  const service = await startService(config);
  try {
    const page = await service.app.request("/");
    assert.equal(page.status, 200);
    const csp = page.headers.get("Content-Security-Policy") ?? "";
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers.get("X-Content-Type-Options"), "nosniff");
    assert.equal(page.headers.get("Referrer-Policy"), "no-referrer");
    const html = await page.text();
    const src = /<script type="module" src="(\/static\/build\/islands-([0-9a-f]{16})\.js)">/
      .exec(html);
    assert.ok(src, "the dashboard links the island bundle");
    assert.match(html, /<!--island:VramStatus:0-->/);
    // Every island of the page, each server-rendered with its data.
    for (const island of ["VramHistory", "PipelinesTable", "EventLog"]) {
      assert.match(html, new RegExp(`<!--island:${island}:\\d+-->`), island);
    }
    assert.match(html, /<table class="ptable">/, "the pipelines table is in the HTML");

    const plain = await service.app.request(src[1]);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("Cache-Control"), IMMUTABLE);
    assert.equal(plain.headers.get("Content-Type"), "text/javascript; charset=utf-8");
    assert.equal(plain.headers.get("Content-Encoding"), null);
    const body = new Uint8Array(await plain.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    const hex = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(hex, src[2], "the name carries the content's hash");

    const gzip = await service.app.request(src[1], { headers: { "Accept-Encoding": "gzip" } });
    assert.equal(gzip.headers.get("Content-Encoding"), "gzip");
    assert.equal(gzip.headers.get("Vary"), "Accept-Encoding");
    const unzipped = new Uint8Array(
      await new Response(gzip.body!.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer(),
    );
    assert.deepEqual(unzipped, body);
    const br = await service.app.request(src[1], { headers: { "Accept-Encoding": "br, gzip" } });
    assert.equal(br.headers.get("Content-Encoding"), "br");
    assert.ok(Number(br.headers.get("Content-Length")) < body.byteLength / 2);
    await br.body?.cancel();

    const missing = await service.app.request("/static/build/islands-0000000000000000.js");
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await service.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

/**
 * The page's style sheets: one per island beside the base, joined into the one sheet
 * the page links; no selector styled twice in the same place; one tooltip.
 * @module
 */
import assert from "node:assert/strict";
import { islands } from "../islands/_manifest.ts";
import { buildStyles, ISLAND_STYLES, styleSources } from "../runtime/server/bundle.ts";
import { cssRules } from "./_css.ts";

Deno.test("styles - every island has its style sheet, and every sheet is an island's", async () => {
  const sheets: string[] = [];
  for await (const entry of Deno.readDir(ISLAND_STYLES)) sheets.push(entry.name);
  assert.deepEqual(
    sheets.sort(),
    Object.keys(islands).map((name) => `${name}.css`).sort(),
    "static/islands/ holds <Island>.css for each island of islands/_manifest.ts",
  );
});

Deno.test("styles - the one sheet joins uPlot's, the base, then each island's, all of them", async () => {
  const sources = await styleSources();
  const names = sources.map((url) => url.pathname.split("/").slice(-2).join("/"));
  assert.deepEqual(names.slice(0, 2), ["dist/uPlot.min.css", "static/base.css"]);
  assert.deepEqual(names.slice(2), [
    "islands/EventLog.css",
    "islands/PipelinesTable.css",
    "islands/VramHistory.css",
    "islands/VramStatus.css",
  ]);
  const built = new TextDecoder().decode(await buildStyles());
  for (const url of sources) assert.ok(built.includes(await Deno.readTextFile(url)), url.href);
});

Deno.test("styles - no selector is styled in two rules of the same context, across every sheet", async () => {
  const seen = new Map<string, string>();
  const twice: string[] = [];
  for (const url of (await styleSources()).slice(1)) {
    const file = url.pathname.split("/").slice(-2).join("/");
    for (const rule of cssRules(await Deno.readTextFile(url))) {
      for (const selector of rule.selectors) {
        const key = `${rule.context} ${selector}`.trim();
        const first = seen.get(key);
        if (first) twice.push(`${key} (${first} and ${file})`);
        else seen.set(key, file);
      }
    }
  }
  assert.deepEqual(twice, []);
});

Deno.test("styles - one tooltip: every tip is a .tip, no pseudo-element tooltips", async () => {
  const rules = (await Promise.all(
    (await styleSources()).slice(1).map(async (url) => cssRules(await Deno.readTextFile(url))),
  )).flat();
  const selectors = rules.flatMap((rule) => rule.selectors);
  assert.deepEqual(selectors.filter((s) => /\[data-tip\]|::(after|before)/.test(s)), [
    "*::before",
    "*::after",
  ]);
  assert.ok(selectors.includes(".tip"));
});

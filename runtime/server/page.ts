/**
 * Renders a whole HTML page: the body with its islands marked, the style sheet, and, only
 * when the body holds an island, the props script and the island bundle. Pages carry the
 * security headers of headers.ts.
 * @module
 */
import { type PageAssets, preparePageAssets } from "./bundle.ts";
import { PAGE_HEADERS } from "./headers.ts";
import { type IslandRegistry, type PageNode, propsScript, renderBody } from "./render.tsx";

/** How to render a page. */
export interface PageOptions {
  title: string;
  /** HTTP status (200). */
  status?: number;
  /** Islands to recognize: the caller passes its registry in (as Fresh's `boot` takes its islands). */
  registry: IslandRegistry;
  /** Built assets (the service's, built once). */
  assets?: PageAssets;
}

// A small bar-chart mark; a data: URL so the browser does not ask for /favicon.ico.
const ICON = "data:image/svg+xml," + encodeURIComponent(
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect x="1" y="9" width="4" ` +
    `height="6" fill="#2f9e44"/><rect x="6" y="5" width="4" height="10" fill="#f08c00"/>` +
    `<rect x="11" y="1" width="4" height="14" fill="#e03131"/></svg>`,
);

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page's HTML document (exported for tests; routes use {@link renderPage}). */
export function pageHtml(
  page: PageNode,
  title: string,
  registry: IslandRegistry,
  assets: PageAssets,
) {
  const body = renderBody(page, registry);
  const script = body.islands.length > 0 && assets.script
    ? `${propsScript(body.islands)}<script type="module" src="${assets.script.url}"></script>`
    : "";
  const preload = script ? `<link rel="modulepreload" href="${assets.script!.url}">` : "";
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="color-scheme" content="light dark"><title>${escapeHtml(title)}</title>` +
    `<link rel="icon" href="${ICON}"><link rel="stylesheet" href="${assets.style.url}">` +
    `${preload}</head><body>${body.html}${script}</body></html>`;
}

/** Renders `page` to a response with the page security headers. */
export async function renderPage(page: PageNode, options: PageOptions): Promise<Response> {
  const assets = options.assets ?? await preparePageAssets();
  const html = pageHtml(page, options.title, options.registry, assets);
  return new Response(html, { status: options.status ?? 200, headers: PAGE_HEADERS });
}

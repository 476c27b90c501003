/**
 * The service's page renderer: the islands runtime's `renderPage` bound to every island
 * of islands/_manifest.ts. The runtime itself imports no island; the registry is passed
 * in here, as Fresh's `boot` receives its islands.
 * @module
 */
import { islands } from "../islands/_manifest.ts";
import { createIslandRegistry, type PageNode } from "../runtime/server/render.tsx";
import { type PageOptions, renderPage as renderWith } from "../runtime/server/page.ts";

const registry = createIslandRegistry(islands);

/** Renders `page` with the service's islands. */
export function renderPage(
  page: PageNode,
  options: Omit<PageOptions, "registry">,
): Promise<Response> {
  return renderWith(page, { ...options, registry });
}

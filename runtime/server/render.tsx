/**
 * Server side of the islands runtime, as Fresh does it on preact-render-to-string: while
 * a page renders, every component registered as an island is wrapped in comment markers
 * (`<!--island:Name:id-->` … `<!--/island:id-->`) and its props are collected; the page
 * then carries all props in one escaped `<script type="application/json">` and, only if
 * it has an island, the content-hashed bundle that hydrates them.
 * @module
 */
import { type ComponentType, Fragment, h, options, type VNode } from "preact";
import { renderToString } from "preact-render-to-string";
import { ISLAND_END, ISLAND_START, PROPS_SCRIPT_ID } from "../protocol.ts";
import { serializeIslandProps } from "./serialize.ts";

// deno-lint-ignore no-explicit-any
type AnyComponent = ComponentType<any>;

/** Any element a page renders (its props' type does not matter here). */
// deno-lint-ignore no-explicit-any
export type PageNode = VNode<any>;

/** Island components and their names (the names the browser bundle registers them under). */
export type IslandRegistry = ReadonlyMap<AnyComponent, string>;

/** Builds a registry from an islands manifest (`{ Name: Component }`). */
export function createIslandRegistry(islands: Record<string, AnyComponent>): IslandRegistry {
  return new Map(Object.entries(islands).map(([name, component]) => [component, name]));
}

/** One island met during a render: its name and the props it was given. */
export interface RenderedIsland {
  name: string;
  props: Record<string, unknown>;
}

/** What rendering a page's body gives: its HTML and the islands in it, in marker-id order. */
export interface RenderedBody {
  html: string;
  islands: RenderedIsland[];
}

interface RenderState {
  registry: IslandRegistry;
  islands: RenderedIsland[];
  /** How many islands enclose the vnode being rendered: an island inside one is plain markup. */
  depth: number;
}

/** The render in progress (renderToString is synchronous, so one at a time). */
let current: RenderState | null = null;

interface BoundaryProps {
  island: string;
  component: AnyComponent;
  props: Record<string, unknown>;
}

/** A comment node: preact-render-to-string renders a Fragment with `UNSTABLE_comment` as one. */
function comment(text: string): VNode {
  return h(Fragment, { UNSTABLE_comment: text } as Record<string, unknown>);
}

function IslandBoundary({ island, component, props }: BoundaryProps): VNode {
  const state = current!;
  const id = state.islands.length;
  state.islands.push({ name: island, props });
  return h(
    Fragment,
    null,
    comment(`${ISLAND_START}${island}:${id}`),
    h(component, props),
    comment(`${ISLAND_END}${id}`),
  );
}

/** A vnode as the option hooks see it: its type and props can be swapped. */
interface HookedVNode {
  type: unknown;
  props: Record<string, unknown>;
}
interface Hooks {
  /** Before a vnode renders (`options._diff`, mangled). */
  __b?: (vnode: HookedVNode) => void;
  /** After a vnode and its children rendered. */
  diffed?: (vnode: HookedVNode) => void;
}
const hooks = options as unknown as Hooks;

// Just before a vnode renders: an island met outside any island becomes its boundary.
const previousDiff = hooks.__b;
hooks.__b = (vnode) => {
  const state = current;
  if (state && typeof vnode.type === "function") {
    const island = state.depth === 0 ? state.registry.get(vnode.type as AnyComponent) : undefined;
    if (island !== undefined) {
      const { key: _key, ref: _ref, ...props } = vnode.props;
      const boundary: BoundaryProps = { island, component: vnode.type as AnyComponent, props };
      vnode.props = boundary as unknown as Record<string, unknown>;
      vnode.type = IslandBoundary;
    }
    if (vnode.type === IslandBoundary) state.depth++;
  }
  previousDiff?.(vnode);
};
const previousDiffed = hooks.diffed;
hooks.diffed = (vnode) => {
  if (current && vnode.type === IslandBoundary) current.depth--;
  previousDiffed?.(vnode);
};

/**
 * Renders `vnode` to HTML, wrapping each island of `registry` in its markers.
 * Islands nested in an island render as plain parts of the outer one.
 */
export function renderBody(vnode: PageNode, registry: IslandRegistry): RenderedBody {
  const state: RenderState = { registry, islands: [], depth: 0 };
  const outer = current;
  current = state;
  try {
    return { html: renderToString(vnode), islands: state.islands };
  } finally {
    current = outer;
  }
}

/** The props script for a page's islands (empty when there are none). */
export function propsScript(islands: RenderedIsland[]): string {
  if (islands.length === 0) return "";
  return `<script type="application/json" id="${PROPS_SCRIPT_ID}">${
    serializeIslandProps(islands)
  }</script>`;
}

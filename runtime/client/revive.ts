/**
 * Browser side of the islands runtime: reads the props script, finds each island's
 * comment markers, and hydrates the island in place between them (a "root fragment"
 * stands in for a parent element, so an island needs no wrapper element). Once
 * hydrated, the island's root element gets `data-ready`.
 * @module
 */
import { type ComponentType, h, hydrate } from "preact";
import { signal } from "@preact/signals";
import {
  ISLAND_END,
  ISLAND_START,
  PROPS_SCRIPT_ID,
  READY_ATTRIBUTE,
  SIGNAL_KEY,
} from "../protocol.ts";

/** Turns `{"$signal": value}` back into a signal (a JSON.parse reviver). */
export function reviveSignals(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === SIGNAL_KEY) {
      return signal((value as Record<string, unknown>)[SIGNAL_KEY]);
    }
  }
  return value;
}

/** A stand-in parent for the nodes between two markers, as Preact's render needs one. */
function rootFragment(start: Comment, end: Comment): Element {
  const parent = start.parentNode!;
  const nodes = () => {
    const out: ChildNode[] = [];
    for (let n = start.nextSibling; n && n !== end; n = n.nextSibling) out.push(n);
    return out;
  };
  const fragment = {
    nodeType: 1,
    parentNode: parent,
    namespaceURI: (parent as Element).namespaceURI,
    get firstChild() {
      return start.nextSibling === end ? null : start.nextSibling;
    },
    get childNodes() {
      return nodes();
    },
    insertBefore: (node: Node, before: Node | null) => parent.insertBefore(node, before ?? end),
    appendChild: (node: Node) => parent.insertBefore(node, end),
    removeChild: (node: Node) => parent.removeChild(node),
    contains: (node: Node) => nodes().some((n) => n === node || n.contains(node)),
  };
  return fragment as unknown as Element;
}

/** The island start markers in `root`, in document order. */
function findStarts(root: Node): Comment[] {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_COMMENT);
  const starts: Comment[] = [];
  while (walker.nextNode()) {
    const comment = walker.currentNode as Comment;
    if (comment.data.startsWith(ISLAND_START)) starts.push(comment);
  }
  return starts;
}

/**
 * Hydrates every island of the page with the components of `islands` (name →
 * component). Returns how many were hydrated; an unknown name or a missing end marker
 * is logged and skipped, so one broken island does not stop the others.
 */
// deno-lint-ignore no-explicit-any
export function reviveIslands(islands: Record<string, ComponentType<any>>): number {
  const script = document.getElementById(PROPS_SCRIPT_ID);
  if (!script) return 0;
  const allProps = JSON.parse(script.textContent ?? "[]", reviveSignals) as Record<
    string,
    unknown
  >[];
  let hydrated = 0;
  for (const start of findStarts(document.body)) {
    const [name, id] = start.data.slice(ISLAND_START.length).split(":");
    const component = islands[name];
    let end = start.nextSibling;
    while (
      end && !(end.nodeType === Node.COMMENT_NODE && (end as Comment).data === ISLAND_END + id)
    ) {
      end = end.nextSibling;
    }
    if (!component || !end) {
      console.error(
        `Islands: cannot hydrate "${name}" (#${id}): ${
          component ? "no end marker" : "not in the bundle"
        }`,
      );
      continue;
    }
    hydrate(h(component, allProps[Number(id)] ?? {}), rootFragment(start, end as Comment));
    for (let n = start.nextSibling; n && n !== end; n = n.nextSibling) {
      if (n.nodeType === Node.ELEMENT_NODE) {
        (n as Element).setAttribute(READY_ATTRIBUTE, "");
        break;
      }
    }
    hydrated++;
  }
  return hydrated;
}

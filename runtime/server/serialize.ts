/**
 * Island props to JSON that is safe inside an HTML `<script>` element: signals become
 * `{"$signal": value}`, functions and class instances are refused with the island's and
 * the prop's name, and every `<`, `>` and `&` is escaped so no prop can end the script
 * (`</script>`) or open a comment (`<!--`).
 * @module
 */
import { SIGNAL_KEY } from "../protocol.ts";

const SIGNAL_BRAND = Symbol.for("preact-signals");

/** True for a @preact/signals signal (checked by its brand, so any copy of the library counts). */
export function isSignal(value: unknown): value is { peek(): unknown } {
  return typeof value === "object" && value !== null &&
    (value as { brand?: unknown }).brand === SIGNAL_BRAND;
}

/**
 * The JSON of every island's props, in marker-id order, escaped for a script element.
 * Throws when a prop cannot survive the trip to the browser.
 */
export function serializeIslandProps(
  islands: ReadonlyArray<{ name: string; props: object }>,
): string {
  const parts = islands.map(({ name, props }) => JSON.stringify(props, replacerFor(name)));
  return escapeScriptJson(`[${parts.join(",")}]`);
}

function replacerFor(island: string) {
  return function (this: unknown, key: string, value: unknown): unknown {
    // `this[key]` is the value before toJSON ran: a signal's toJSON would hide it.
    const raw = key === "" ? value : (this as Record<string, unknown>)[key];
    if (isSignal(raw)) return { [SIGNAL_KEY]: raw.peek() };
    if (key === "children" && raw !== undefined) {
      throw new TypeError(`Island "${island}": children cannot be passed to an island`);
    }
    if (typeof raw === "function" || typeof raw === "symbol" || typeof raw === "bigint") {
      throw new TypeError(
        `Island "${island}": prop "${key}" is a ${typeof raw}; island props must be ` +
          `JSON data or signals`,
      );
    }
    if (typeof raw === "object" && raw !== null && !Array.isArray(raw) && !(raw instanceof Date)) {
      const proto = Object.getPrototypeOf(raw);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(
          `Island "${island}": prop "${key}" is a ${proto?.constructor?.name ?? "class"} ` +
            `instance; pass plain objects`,
        );
      }
      if (Object.hasOwn(raw, SIGNAL_KEY)) {
        throw new TypeError(`Island "${island}": prop "${key}" uses the reserved key "$signal"`);
      }
    }
    return value;
  };
}

/** Escapes JSON text for an HTML script element (the JSON itself is unchanged once parsed). */
export function escapeScriptJson(json: string): string {
  return json.replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * A JSON body's bytes → its value, the one rule for every route that takes JSON, on the
 * main thread for a small body and in a body worker (./body_worker.ts) for a large one:
 * the bytes decoded as UTF-8, an empty body read as `{}`, then `JSON.parse`. At the paths
 * a route names ({@link LiftPaths}), long values are converted while parsing: an array of
 * numbers (tensor data) becomes a `Float64Array`, a base64 `data:` URL (a chat image) its
 * decoded bytes ({@link LiftedDataUrl}). A worker hands those back by transfer, so the
 * main thread neither copies, validates nor decodes millions of values one by one.
 * Dependency-free: the worker loads nothing else.
 * @module
 */

/**
 * A number array at least this long is lifted into a `Float64Array`: below it the array is
 * as cheap to clone back as to lift.
 */
export const LIFT_MIN_ELEMENTS = 1024;

/** A `data:` URL at least this long is decoded while parsing (below it, where it is read). */
export const LIFT_MIN_URL_CHARS = 64 * 1024;

/**
 * Where a route's body holds long values to convert while parsing: dotted paths, `*` for
 * any key or index (`inputs.*.data`, `messages.*.content.*.image_url.url`).
 */
export interface LiftPaths {
  /** Arrays of numbers, as a Float64Array. */
  numbers?: readonly string[];
  /** base64 `data:` URLs, as a {@link LiftedDataUrl}. */
  dataUrls?: readonly string[];
}

/**
 * A base64 `data:` URL decoded while its body was parsed: its header as sent
 * (`data:image/png;base64,`), the count of base64 characters after it, and the bytes. JSON
 * cannot carry a Uint8Array, so a client cannot send one of these itself. A URL whose
 * base64 is not valid stays a string (where it is read, the decode fails with the field).
 */
export interface LiftedDataUrl {
  header: string;
  base64Chars: number;
  bytes: Uint8Array;
}

/** The bytes of a body read in parts, decoded as one UTF-8 text (one copy at most). */
function decode(parts: readonly Uint8Array[]): string {
  if (parts.length === 1) return new TextDecoder().decode(parts[0]);
  const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return new TextDecoder().decode(bytes);
}

/** `array` as a Float64Array when it is long and every element a number, else null. */
function liftedArray(array: unknown[]): Float64Array | null {
  if (array.length < LIFT_MIN_ELEMENTS) return null;
  const out = new Float64Array(array.length);
  for (let i = 0; i < array.length; i++) {
    const value = array[i];
    if (typeof value !== "number") return null; // strings, booleans: validated as they are
    out[i] = value;
  }
  return out;
}

/** `url` decoded when it is a long base64 `data:` URL whose base64 is valid, else null. */
function liftedDataUrl(url: unknown): LiftedDataUrl | null {
  if (typeof url !== "string" || url.length < LIFT_MIN_URL_CHARS) return null;
  const header = /^data:[^,;]{0,100}(?:;[^,;]{0,100})*;base64,/i.exec(url.slice(0, 256))?.[0];
  if (header === undefined) return null;
  try {
    const bytes = Uint8Array.fromBase64(url.slice(header.length)); // skips ASCII whitespace
    return { header, base64Chars: url.length - header.length, bytes };
  } catch {
    return null;
  }
}

/** Replaces each value at `path` (segments) under `value` with `lift(it)` where that is not null. */
function liftAt<T extends object>(
  value: unknown,
  path: readonly string[],
  lift: (item: unknown) => T | null,
  lifted: T[],
): void {
  if (path.length === 0 || value === null || typeof value !== "object") return;
  const [head, ...rest] = path;
  const record = value as Record<string, unknown>;
  const keys = head === "*" ? Object.keys(record) : Object.hasOwn(record, head) ? [head] : [];
  for (const key of keys) {
    if (rest.length > 0) {
      liftAt(record[key], rest, lift, lifted);
      continue;
    }
    const converted = lift(record[key]);
    if (converted !== null) {
      record[key] = converted;
      lifted.push(converted);
    }
  }
}

/** A parsed body and the buffers of what was lifted in it (what a worker transfers). */
export interface ParsedJson {
  value: unknown;
  buffers: ArrayBuffer[];
}

/**
 * Parses a JSON body from its bytes and converts the long values at `paths`. Throws a
 * SyntaxError with JSON.parse's own message when the text is not JSON.
 */
export function parseJsonBytes(parts: readonly Uint8Array[], paths: LiftPaths = {}): ParsedJson {
  const text = decode(parts);
  const value = text.trim() === "" ? {} : JSON.parse(text);
  const arrays: Float64Array[] = [];
  const urls: LiftedDataUrl[] = [];
  const lifted = (array: unknown) => (Array.isArray(array) ? liftedArray(array) : null);
  for (const path of paths.numbers ?? []) liftAt(value, path.split("."), lifted, arrays);
  for (const path of paths.dataUrls ?? []) liftAt(value, path.split("."), liftedDataUrl, urls);
  const buffers = [...arrays, ...urls.map((url) => url.bytes)].map((view) =>
    view.buffer as ArrayBuffer
  );
  return { value, buffers };
}

/**
 * A plugin's output as JSON: plugins return what their own code likes (typed arrays for
 * audio, a recurrent state, bigints), and `JSON.stringify` would turn a `Float32Array`
 * into an object keyed "0"…"255" that no plugin accepts back. Here typed arrays become
 * plain arrays of numbers, so what the API answers can be sent back as it came.
 * @module
 */

/**
 * `value` with every typed array (and DataView / ArrayBuffer, as bytes) turned into a
 * plain array, bigints into numbers (strings when beyond 2^53), at any depth; other
 * values as they are (JSON.stringify handles the rest).
 */
export function pluginOutputToJson(value: unknown): unknown {
  if (typeof value === "bigint") return bigintToJson(value);
  if (value === null || typeof value !== "object") return value;
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    return Array.from(value, bigintToJson);
  }
  if (ArrayBuffer.isView(value)) {
    return value instanceof DataView
      ? Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))
      : Array.from(value as unknown as ArrayLike<number>);
  }
  if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
  if (Array.isArray(value)) return value.map(pluginOutputToJson);
  if (value instanceof Date || value instanceof Map || value instanceof Set) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, pluginOutputToJson(item)]),
  );
}

function bigintToJson(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(-Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : String(value);
}

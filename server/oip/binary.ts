/**
 * The binary tensor data extension's codec (Triton's `binary_tensor_data`): a tensor's
 * elements as raw little-endian bytes, row major, no padding; BOOL one byte (0 or 1);
 * BYTES (ONNX `string`) each element a 4-byte little-endian unsigned length, then its
 * bytes. Numeric tensors are views of the bytes they came from where the alignment allows
 * (no copy either way on a little-endian host). Pure: no HTTP, no I/O; a size that does not match the shape throws a
 * {@link TensorBytesError} naming the tensor. BYTES elements must be UTF-8 text without NUL:
 * onnxruntime holds string tensors as text, and onnxruntime-node cuts one at a NUL byte.
 * @module
 */
import {
  type NumericTensorType,
  TENSOR_ARRAYS,
  type TensorType,
  type TypedTensorData,
  type WireTensor,
} from "../../core/pipelines/protocol.ts";

/** Bytes of one element of each numeric type (BYTES is variable: see {@link encodeTensorBytes}). */
export const ELEMENT_BYTES: Record<NumericTensorType, number> = {
  float32: 4,
  float16: 2,
  float64: 8,
  int32: 4,
  int64: 8,
  int16: 2,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  int8: 1,
  bool: 1,
};

/** A tensor's bytes do not fit its shape or type; the message names the tensor and the fix. */
export class TensorBytesError extends Error {
  override name = "TensorBytesError";
}

/** True on a little-endian host (typed arrays use the host's byte order; the wire is little-endian). */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Reverses the bytes of each `size`-byte element in place (only on a big-endian host). */
function swapElements(bytes: Uint8Array, size: number): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN || size === 1) return bytes;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  return bytes;
}

/** The element count a shape holds. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/**
 * A tensor's data as the extension's bytes: on a little-endian host a view of the tensor's
 * own bytes (no copy: the answer copies them once, into its body), else a byte-swapped copy.
 */
export function encodeTensorBytes(tensor: WireTensor): Uint8Array {
  if (Array.isArray(tensor.data)) {
    const parts = tensor.data.map((text) => utf8.encode(text));
    const out = new Uint8Array(parts.reduce((sum, part) => sum + 4 + part.length, 0));
    const view = new DataView(out.buffer);
    let at = 0;
    for (const part of parts) {
      view.setUint32(at, part.length, true);
      out.set(part, at + 4);
      at += 4 + part.length;
    }
    return out;
  }
  const data = tensor.data;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return HOST_IS_LITTLE_ENDIAN ? bytes : swapElements(bytes.slice(), data.BYTES_PER_ELEMENT);
}

/**
 * Decodes the extension's bytes of the tensor `name` into wire data for `type` and
 * `dims`; throws a {@link TensorBytesError} naming `name` when the byte count does not
 * match the shape (or a BYTES element runs past the end or is not UTF-8).
 */
export function decodeTensorBytes(
  name: string,
  type: TensorType,
  dims: readonly number[],
  bytes: Uint8Array,
): WireTensor["data"] {
  const count = elementCount(dims);
  if (type === "string") return decodeStrings(name, count, bytes);
  const size = ELEMENT_BYTES[type];
  if (bytes.length !== count * size) {
    throw new TensorBytesError(
      `input "${name}": shape [${dims.join(", ")}] of ${type} needs ${count * size} bytes ` +
        `(${count} × ${size}) but ${bytes.length} were sent; fix "shape" or "binary_data_size"`,
    );
  }
  // A view of the body where its bytes lie at the element size's alignment (the v2 route
  // reads bodies so that they do: readInferenceBody), else a copy a typed array can view.
  if (HOST_IS_LITTLE_ENDIAN && bytes.byteOffset % size === 0) {
    return new TENSOR_ARRAYS[type](
      bytes.buffer as ArrayBuffer,
      bytes.byteOffset,
      count,
    ) as TypedTensorData;
  }
  const own = swapElements(bytes.slice(), size);
  return new TENSOR_ARRAYS[type](own.buffer as ArrayBuffer) as TypedTensorData;
}

function decodeStrings(name: string, count: number, bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) {
      throw new TensorBytesError(
        `input "${name}": BYTES element ${out.length} has ${
          bytes.length - at
        } bytes left for its 4-byte length`,
      );
    }
    const length = view.getUint32(at, true);
    if (at + 4 + length > bytes.length) {
      throw new TensorBytesError(
        `input "${name}": BYTES element ${out.length} says ${length} bytes but only ${
          bytes.length - at - 4
        } remain`,
      );
    }
    const element = bytes.subarray(at + 4, at + 4 + length);
    if (element.includes(0)) {
      throw new TensorBytesError(
        `input "${name}": BYTES element ${out.length} holds a NUL byte, which onnxruntime's ` +
          "string tensors cut off: send text without NUL",
      );
    }
    try {
      out.push(utf8Strict.decode(element));
    } catch {
      throw new TensorBytesError(
        `input "${name}": BYTES element ${out.length} is not UTF-8 text (ONNX string tensors hold text)`,
      );
    }
    at += 4 + length;
  }
  if (out.length !== count) {
    throw new TensorBytesError(
      `input "${name}": the shape holds ${count} BYTES elements but ${out.length} were sent`,
    );
  }
  return out;
}

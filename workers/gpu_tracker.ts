/**
 * Counts every WebGPU buffer alive in this realm (a pipeline worker), in bytes: the exact
 * VRAM figure of one pipeline. It wraps `GPUDevice.prototype.createBuffer`,
 * `GPUBuffer.prototype.destroy` and `GPUDevice.prototype.destroy`, so it must be
 * installed before the first session is created. onnxruntime-web destroys its own
 * GPUDevice on `release()`: a destroyed (or lost) device frees all of its buffers.
 * @module
 */

/** Live GPU allocations as the tracker sees them. */
export interface GpuTracker {
  /** Buffers created and not yet destroyed (nor freed with their device). */
  readonly buffers: number;
  /** Their total size in bytes. */
  readonly bytes: number;
  /** Largest `bytes` seen since install or the last {@link GpuTracker.resetPeak}. */
  readonly peakBytes: number;
  /** GPUOutOfMemoryErrors reported by a tracked device (uncaptured errors), since install. */
  readonly oomErrors: number;
  /** Starts a new peak window at the current `bytes` (for example at session create). */
  resetPeak(): void;
}

interface DeviceRecord {
  live: Set<GPUBuffer>;
}

let tracker: (GpuTracker & { peak: number }) | null = null;

/**
 * Installs the wrappers once per realm and returns the tracker (later calls return the same
 * one). Returns null where this realm has no WebGPU classes.
 */
export function installGpuTracker(): GpuTracker | null {
  if (tracker) return tracker;
  if (typeof GPUDevice === "undefined" || typeof GPUBuffer === "undefined") return null;

  const sizes = new Map<GPUBuffer, { size: number; device: DeviceRecord }>();
  const devices = new WeakMap<GPUDevice, DeviceRecord>();
  let bytes = 0;
  let oomErrors = 0;
  const state = {
    peak: 0,
    get buffers() {
      return sizes.size;
    },
    get bytes() {
      return bytes;
    },
    get peakBytes() {
      return state.peak;
    },
    get oomErrors() {
      return oomErrors;
    },
    resetPeak() {
      state.peak = bytes;
    },
  };

  const free = (buffer: GPUBuffer) => {
    const entry = sizes.get(buffer);
    if (!entry) return; // untracked, or already freed: count once
    sizes.delete(buffer);
    entry.device.live.delete(buffer);
    bytes -= entry.size;
  };
  const freeDevice = (record: DeviceRecord) => {
    for (const buffer of [...record.live]) free(buffer);
  };
  const recordOf = (device: GPUDevice): DeviceRecord => {
    let record = devices.get(device);
    if (!record) {
      const created: DeviceRecord = { live: new Set() };
      record = created;
      devices.set(device, created);
      device.lost?.then(() => freeDevice(created)).catch(() => {});
      device.addEventListener?.("uncapturederror", (event) => {
        const error = (event as GPUUncapturedErrorEvent).error;
        if (typeof GPUOutOfMemoryError !== "undefined" && error instanceof GPUOutOfMemoryError) {
          oomErrors++;
        }
      });
    }
    return record;
  };

  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (
    this: GPUDevice,
    descriptor: GPUBufferDescriptor,
  ): GPUBuffer {
    const buffer = createBuffer.call(this, descriptor);
    const record = recordOf(this);
    const size = Number(buffer.size ?? descriptor.size);
    sizes.set(buffer, { size, device: record });
    record.live.add(buffer);
    bytes += size;
    if (bytes > state.peak) state.peak = bytes;
    return buffer;
  };

  const destroyBuffer = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function (this: GPUBuffer): undefined {
    free(this);
    destroyBuffer.call(this);
  };

  const destroyDevice = GPUDevice.prototype.destroy;
  GPUDevice.prototype.destroy = function (this: GPUDevice): undefined {
    const record = devices.get(this);
    if (record) freeDevice(record);
    destroyDevice.call(this);
  };

  tracker = state;
  return tracker;
}

/**
 * True when an error means the GPU (or the wasm heap feeding it) ran out of memory, so the
 * caller may evict another pipeline and retry.
 */
export function isOutOfMemoryError(error: unknown): boolean {
  if (typeof GPUOutOfMemoryError !== "undefined" && error instanceof GPUOutOfMemoryError) {
    return true;
  }
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return /out of memory|outofmemory|failed to allocate|allocation failed|GPUOutOfMemoryError|ERROR_OUT_OF_MEMORY/i
    .test(text);
}

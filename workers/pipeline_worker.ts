/**
 * One pipeline worker: owns a model's bytes, an optional plugin and one onnxruntime-web
 * session, on the webgpu EP ("gpu") or the wasm EP ("cpu"). Answers every
 * {@link WorkerRequest} with a {@link WorkerReply} of the same id, one request at a
 * time in arrival order; errors travel as data.
 *
 * Builds: a CPU-only pipeline imports the plain `onnxruntime-web` build (wasm, threads);
 * the first GPU load imports `onnxruntime-web/webgpu` (~300 MB more RSS), whose wasm EP
 * then also serves CPU placement (one build per worker, single-threaded wasm).
 * @module
 */
import type * as OrtModule from "onnxruntime-web";
import { type GpuTracker, installGpuTracker, isOutOfMemoryError } from "./gpu_tracker.ts";
import type { PipelinePlugin } from "./plugin.ts";
import { PluginInputError } from "./plugin.ts";
import {
  type ParityResult,
  type PipelineSpec,
  type RunInput,
  type RunOutput,
  type SessionDevice,
  type TensorInfo,
  type TensorType,
  transferablesOf,
  type WireTensor,
  type WorkerError,
  type WorkerErrorCode,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStatus,
} from "./protocol.ts";

type Ort = typeof OrtModule;
type Session = OrtModule.InferenceSession;

/** An error that becomes `{code, message}` in the reply. */
class WorkerFailure extends Error {
  constructor(readonly code: WorkerErrorCode, message: string) {
    super(message);
  }
}

const state = {
  spec: null as PipelineSpec | null,
  modelBytes: null as Uint8Array | null,
  plugin: null as PipelinePlugin | null,
  ort: null as Ort | null,
  build: "none" as WorkerStatus["build"],
  session: null as Session | null,
  device: "none" as WorkerStatus["device"],
  tracker: null as GpuTracker | null,
  inputs: [] as TensorInfo[],
  outputs: [] as TensorInfo[],
};

const TENSOR_TYPES = new Set<string>([
  "float32",
  "float16",
  "int32",
  "int64",
  "uint8",
  "int8",
  "bool",
]);

function status(): WorkerStatus {
  return {
    device: state.device,
    gpuBuffers: state.tracker?.buffers ?? 0,
    gpuBytes: state.tracker?.bytes ?? 0,
    gpuPeakBytes: state.tracker?.peakBytes ?? 0,
    rssBytes: Deno.memoryUsage().rss,
    inputs: state.inputs,
    outputs: state.outputs,
    build: state.build,
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- onnxruntime-web builds ---------------------------------------------------------------

async function webgpuOrt(): Promise<Ort> {
  if (state.build === "webgpu") return state.ort!;
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter().catch(() => null);
  if (!adapter) {
    throw new WorkerFailure(
      "no_webgpu",
      gpu
        ? "No WebGPU adapter: navigator.gpu.requestAdapter() returned null; load this pipeline on the CPU"
        : "No WebGPU in this runtime (navigator.gpu is missing); load this pipeline on the CPU",
    );
  }
  // The tracker must wrap GPUDevice before onnxruntime-web asks for one.
  state.tracker = installGpuTracker();
  // A worker's location.origin is "null", which breaks the build's URL resolution.
  Object.defineProperty(globalThis, "location", { value: undefined, configurable: true });
  const ort = await import("onnxruntime-web/webgpu") as Ort;
  ort.env.wasm.numThreads = 1; // threads fail on the blob: URL this build uses
  state.ort = ort;
  state.build = "webgpu";
  return ort;
}

async function cpuOrt(): Promise<Ort> {
  if (state.ort) return state.ort; // the WebGPU build's wasm EP serves the CPU as well
  const ort = await import("onnxruntime-web") as Ort;
  ort.env.wasm.numThreads = Math.max(1, state.spec?.numThreads ?? 1);
  state.ort = ort;
  state.build = "wasm";
  return ort;
}

function tensorInfo(meta: OrtModule.InferenceSession.ValueMetadata): TensorInfo {
  if (!meta.isTensor) return { name: meta.name, type: null, dims: [] };
  const type = TENSOR_TYPES.has(meta.type) ? meta.type as TensorType : null;
  // Free dimensions come back as names ("N") or, from some models, as -1 read unsigned.
  const dims = meta.shape.map((d) => (typeof d === "number" && (d < 0 || d >= 2 ** 31) ? -1 : d));
  return { name: meta.name, type, dims };
}

async function createSession(device: SessionDevice): Promise<void> {
  const bytes = state.modelBytes;
  if (!bytes) throw new WorkerFailure("not_loaded", "The worker has no model: send init first");
  const ort = device === "gpu" ? await webgpuOrt() : await cpuOrt();
  try {
    state.tracker?.resetPeak();
    state.session = await ort.InferenceSession.create(bytes, {
      executionProviders: [device === "gpu" ? "webgpu" : "wasm"],
    });
  } catch (error) {
    const code = device === "gpu" && isOutOfMemoryError(error) ? "oom" : "load_failed";
    throw new WorkerFailure(code, `Creating the ${device} session failed: ${describe(error)}`);
  }
  state.device = device;
  state.inputs = state.session.inputMetadata.map(tensorInfo);
  state.outputs = state.session.outputMetadata.map(tensorInfo);
}

async function releaseSession(): Promise<void> {
  const session = state.session;
  state.session = null;
  state.device = "none";
  if (session) await session.release();
}

// ---- running -------------------------------------------------------------------------------

/** Checks feeds against the session's inputs; throws bad_input naming the input. */
function checkFeeds(feeds: Record<string, WireTensor>): void {
  const expected = new Map(state.inputs.map((info) => [info.name, info]));
  for (const name of Object.keys(feeds)) {
    if (!expected.has(name)) {
      throw new WorkerFailure(
        "bad_input",
        `Unknown input "${name}": expected ${[...expected.keys()].map((n) => `"${n}"`).join(", ")}`,
      );
    }
  }
  for (const info of state.inputs) {
    const tensor = feeds[info.name];
    if (!tensor) throw new WorkerFailure("bad_input", `Missing input "${info.name}"`);
    if (info.type && tensor.type !== info.type) {
      throw new WorkerFailure(
        "bad_input",
        `Input "${info.name}" has type ${tensor.type}: expected ${info.type}`,
      );
    }
    const dims = tensor.dims;
    const shapeOk = info.dims.length === 0 ||
      (dims.length === info.dims.length &&
        info.dims.every((d, i) => typeof d !== "number" || d < 0 || d === dims[i]));
    if (!shapeOk || dims.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new WorkerFailure(
        "bad_input",
        `Input "${info.name}" has dims [${dims.join(", ")}]: expected [${info.dims.join(", ")}]`,
      );
    }
    const count = dims.reduce((a, b) => a * b, 1);
    if (tensor.data?.length !== count) {
      throw new WorkerFailure(
        "bad_input",
        `Input "${info.name}" has ${tensor.data?.length} elements: dims [${
          dims.join(", ")
        }] need ${count}`,
      );
    }
  }
}

async function infer(feeds: Record<string, WireTensor>): Promise<Record<string, WireTensor>> {
  const ort = state.ort;
  const session = state.session;
  if (!ort || !session) throw new WorkerFailure("not_loaded", "No session: send load first");
  checkFeeds(feeds);
  const ortFeeds: Record<string, OrtModule.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    ortFeeds[name] = new ort.Tensor(t.type, t.data as OrtModule.Tensor.DataType, t.dims);
  }
  const results = await session.run(ortFeeds);
  const out: Record<string, WireTensor> = {};
  for (const [name, tensor] of Object.entries(results)) {
    let data = tensor.data as WireTensor["data"];
    // Own the buffer outright, so it can be transferred.
    if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice();
    out[name] = { type: tensor.type as TensorType, dims: [...tensor.dims], data };
  }
  return out;
}

async function run(input: RunInput): Promise<RunOutput> {
  if (input.kind === "tensors") return { kind: "tensors", tensors: await infer(input.tensors) };
  const plugin = state.plugin;
  if (!plugin) {
    throw new WorkerFailure(
      "bad_input",
      `Model "${state.spec?.modelId}" has no plugin: send tensors`,
    );
  }
  if (!state.session) throw new WorkerFailure("not_loaded", "No session: send load first");
  try {
    return { kind: "plugin", payload: await plugin.process(input.payload, infer) };
  } catch (error) {
    // By name too: a plugin that imported plugin.ts by another URL has its own class.
    if (error instanceof PluginInputError || (error as Error)?.name === "PluginInputError") {
      throw new WorkerFailure("bad_input", (error as Error).message);
    }
    throw error;
  }
}

// ---- GPU/CPU parity --------------------------------------------------------------------------

/** A deterministic probe for a plain model: each input filled from a small seeded sequence. */
function generatedProbe(): Record<string, WireTensor> {
  const feeds: Record<string, WireTensor> = {};
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff * 2 - 1;
  };
  for (const info of state.inputs) {
    const dims = info.dims.map((d) => (typeof d === "number" && d > 0 ? d : 1));
    const count = dims.reduce((a, b) => a * b, 1);
    const type = info.type ?? "float32";
    const data = type === "float32"
      ? Float32Array.from({ length: count }, next)
      : type === "int64"
      ? new BigInt64Array(count).fill(1n)
      : type === "int32"
      ? new Int32Array(count).fill(1)
      : type === "int8"
      ? new Int8Array(count).fill(1)
      : new Uint8Array(count).fill(1);
    feeds[info.name] = { type, dims, data };
  }
  return feeds;
}

/** Runs the probe with `session`, returning every raw output of every session run, in order. */
async function probeOutputs(
  session: Session,
  probe: unknown,
  isPlugin: boolean,
): Promise<WireTensor[]> {
  const saved = state.session;
  const seen: WireTensor[] = [];
  state.session = session;
  try {
    const recording = async (feeds: Record<string, WireTensor>) => {
      // Copies: infer may transfer or reuse the callers' buffers.
      const copy: Record<string, WireTensor> = {};
      for (const [name, t] of Object.entries(feeds)) copy[name] = { ...t, data: t.data.slice() };
      const out = await infer(copy);
      for (const name of Object.keys(out).sort()) {
        seen.push({ ...out[name], data: out[name].data.slice() });
      }
      return out;
    };
    if (isPlugin) await state.plugin!.process(structuredClone(probe), recording);
    else await recording(probe as Record<string, WireTensor>);
  } finally {
    state.session = saved;
  }
  return seen;
}

/** Compares the GPU session's outputs with a temporary wasm session's on one probe. */
async function parity(tolerance: number): Promise<ParityResult> {
  if (state.device !== "gpu" || !state.session || !state.ort || !state.modelBytes) {
    throw new WorkerFailure("not_loaded", "The parity check needs the session on the GPU");
  }
  const pluginProbe = state.plugin?.probe?.();
  const isPlugin = pluginProbe !== undefined;
  const probe = isPlugin ? pluginProbe : generatedProbe();
  const gpu = await probeOutputs(state.session, probe, isPlugin);
  const cpuSession = await state.ort.InferenceSession.create(state.modelBytes, {
    executionProviders: ["wasm"],
  });
  let cpu: WireTensor[];
  try {
    cpu = await probeOutputs(cpuSession, probe, isPlugin);
  } finally {
    await cpuSession.release();
  }
  let maxAbsError = 0;
  let elements = 0;
  if (gpu.length !== cpu.length) maxAbsError = Infinity;
  for (let i = 0; i < Math.min(gpu.length, cpu.length) && maxAbsError !== Infinity; i++) {
    const a = gpu[i].data;
    const b = cpu[i].data;
    if (a.length !== b.length) {
      maxAbsError = Infinity;
      break;
    }
    for (let j = 0; j < a.length; j++) {
      const diff = Math.abs(Number(a[j]) - Number(b[j]));
      if (!(diff <= maxAbsError)) maxAbsError = Number.isNaN(diff) ? Infinity : diff;
    }
    elements += a.length;
  }
  return {
    maxAbsError,
    tolerance,
    agrees: maxAbsError <= tolerance,
    elements,
    probe: isPlugin ? "plugin" : "generated",
  };
}

// ---- requests ------------------------------------------------------------------------------

async function init(spec: PipelineSpec): Promise<void> {
  if (state.spec) {
    throw new WorkerFailure("internal", `This worker already serves "${state.spec.modelId}"`);
  }
  try {
    state.modelBytes = await Deno.readFile(spec.modelPath);
  } catch (error) {
    throw new WorkerFailure(
      "load_failed",
      `Cannot read model "${spec.modelPath}": ${describe(error)}`,
    );
  }
  if (spec.pluginUrl) {
    let plugin: PipelinePlugin | undefined;
    try {
      plugin = (await import(spec.pluginUrl)).default;
    } catch (error) {
      throw new WorkerFailure(
        "load_failed",
        `Cannot import plugin ${spec.pluginUrl}: ${describe(error)}`,
      );
    }
    if (!plugin || typeof plugin.process !== "function") {
      throw new WorkerFailure(
        "load_failed",
        `Plugin ${spec.pluginUrl} has no default export with a process() method`,
      );
    }
    const assets: Record<string, Uint8Array> = {};
    for (const [name, path] of Object.entries(spec.assets)) {
      try {
        assets[name] = await Deno.readFile(path);
      } catch (error) {
        throw new WorkerFailure(
          "load_failed",
          `Cannot read asset "${name}" (${path}): ${describe(error)}`,
        );
      }
    }
    try {
      await plugin.init?.({ modelId: spec.modelId, assets });
    } catch (error) {
      throw new WorkerFailure("load_failed", `Plugin init failed: ${describe(error)}`);
    }
    state.plugin = plugin;
  }
  state.spec = spec;
}

async function load(device: SessionDevice): Promise<void> {
  if (state.session && state.device === device) return;
  await releaseSession();
  await createSession(device);
}

async function offload(): Promise<void> {
  if (state.device !== "gpu") {
    throw new WorkerFailure(
      "not_loaded",
      `Nothing to offload: the session is on "${state.device}"`,
    );
  }
  await releaseSession();
  const left = state.tracker;
  if (left && (left.buffers !== 0 || left.bytes !== 0)) {
    console.warn(
      `offload: ${left.buffers} GPU buffers (${left.bytes} bytes) still alive after release()`,
    );
  }
  await createSession("cpu");
}

async function rehydrate(): Promise<void> {
  if (state.device === "gpu") return;
  if (state.device !== "cpu") {
    throw new WorkerFailure("not_loaded", "Nothing to rehydrate: no session is loaded");
  }
  await releaseSession();
  try {
    await createSession("gpu");
  } catch (error) {
    // Keep serving on the CPU; the caller sees why the move failed.
    await createSession("cpu");
    throw error;
  }
}

async function handle(req: WorkerRequest): Promise<RunOutput | ParityResult | undefined> {
  if (req.type !== "init" && req.type !== "status" && !state.spec) {
    throw new WorkerFailure("not_loaded", `"${req.type}" before init: send init first`);
  }
  switch (req.type) {
    case "init":
      return void await init(req.spec);
    case "load":
      return void await load(req.device);
    case "run":
      return await run(req.input);
    case "offload":
      return void await offload();
    case "rehydrate":
      return void await rehydrate();
    case "unload":
      return void await releaseSession();
    case "status":
      return undefined;
    case "parity":
      return await parity(req.tolerance);
    default:
      throw new WorkerFailure(
        "internal",
        `Unknown request type "${(req as { type: string }).type}"`,
      );
  }
}

function toError(error: unknown, req: WorkerRequest): WorkerError {
  if (error instanceof WorkerFailure) return { code: error.code, message: error.message };
  const oom = (state.device === "gpu" && isOutOfMemoryError(error)) ||
    (state.tracker?.oomErrors ?? 0) > oomSeen;
  const code: WorkerErrorCode = oom ? "oom" : req.type === "run" ? "run_failed" : "internal";
  return { code, message: `${req.type} failed: ${describe(error)}` };
}

let oomSeen = 0;
let queue: Promise<void> = Promise.resolve();
const post = (globalThis as unknown as {
  postMessage(message: WorkerReply, transfer: Transferable[]): void;
}).postMessage.bind(globalThis);

async function serve(req: WorkerRequest): Promise<void> {
  const start = performance.now();
  let reply: WorkerReply;
  let transfer: Transferable[] = [];
  try {
    const result = await handle(req);
    const ms = performance.now() - start;
    const output = result && "kind" in result ? result : undefined;
    const parityResult = result && "agrees" in result ? result : undefined;
    // A GPU out-of-memory error reported during the request makes its results unreliable.
    if (state.tracker && state.tracker.oomErrors > oomSeen) {
      throw new WorkerFailure("oom", `The GPU ran out of memory during ${req.type}`);
    }
    reply = {
      id: req.id,
      ok: true,
      status: status(),
      ms,
      ...(output ? { output } : {}),
      ...(parityResult ? { parity: parityResult } : {}),
    };
    if (output?.kind === "tensors") transfer = transferablesOf(output.tensors);
  } catch (error) {
    reply = {
      id: req.id,
      ok: false,
      status: status(),
      error: toError(error, req),
      ms: performance.now() - start,
    };
  }
  oomSeen = state.tracker?.oomErrors ?? 0;
  try {
    post(reply, transfer);
  } catch (error) {
    // An output the structured clone cannot carry (a plugin returned a function, say).
    post({
      id: req.id,
      ok: false,
      status: status(),
      error: { code: "internal", message: `Reply could not be sent: ${describe(error)}` },
      ms: reply.ms,
    }, []);
  }
}

globalThis.addEventListener("message", (event: Event) => {
  const req = (event as MessageEvent<WorkerRequest>).data;
  queue = queue.then(() => serve(req));
});

// Last line of defence: nothing escapes as an unhandled rejection that would kill the worker.
globalThis.addEventListener("unhandledrejection", (event: PromiseRejectionEvent) => {
  event.preventDefault();
  console.error("pipeline worker: unhandled rejection:", event.reason);
});

/**
 * One pipeline's engine worker: owns a model's files and one session: on
 * onnxruntime-web's webgpu EP ("gpu"), or on the CPU engine the spec names ("cpu":
 * onnxruntime-node's native CPU EP, or onnxruntime-web's wasm EP as the fallback).
 * Answers every {@link WorkerRequest} with the {@link WorkerReply} of its kind and the
 * same id, one request at a time in arrival order; errors travel as data. It runs only
 * Headroom's code: a plugin runs in its own process (workers/plugin_host.ts), and the
 * host sends its session runs here as tensors.
 *
 * Memory: weights are never held twice for long. The native engine reads the files
 * itself; a web session gets the files' bytes only while it is created. A move releases
 * the old session before creating the new one, except an offload with a deferred parity
 * check, which needs both for one probe (see {@link offload}).
 * @module
 */
import type * as OrtModule from "onnxruntime-web";
import { type GpuTracker, isOutOfMemoryError } from "./gpu_tracker.ts";
import { feedProblem } from "../core/pipelines/feeds.ts";
import {
  isTensorType,
  type OkReply,
  type ParityReply,
  type ParityResult,
  type PipelineSpec,
  type PostedReply,
  type Replies,
  type RequestKind,
  type RequestOf,
  type RunInput,
  type RunOutput,
  type SessionDevice,
  type SessionEngine,
  TENSOR_ARRAYS,
  type TensorInfo,
  type TensorType,
  transferablesOf,
  type WireTensor,
  type WorkerError,
  type WorkerErrorCode,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStatus,
} from "../core/pipelines/protocol.ts";
import { EngineFailure as WorkerFailure } from "./engines/types.ts";
import {
  createWebSession,
  importWasmBuild,
  importWebgpuBuild,
  wasmMemoryBytes,
  type WebOrt,
} from "./engines/web.ts";
import {
  createNativeSession,
  loadNativeOrt,
  nativeFloat16Tensor,
  type NativeOrt,
} from "./engines/native.ts";

type Session = OrtModule.InferenceSession;
type TensorApi = Pick<WebOrt, "Tensor">;

/** One open session and the engine (and Tensor class) it runs on. */
interface Open {
  session: Session;
  engine: SessionEngine;
  api: TensorApi;
}

const state = {
  spec: null as PipelineSpec | null,
  web: null as WebOrt | null,
  native: null as NativeOrt | null,
  build: "none" as WorkerStatus["build"],
  open: null as Open | null,
  device: "none" as WorkerStatus["device"],
  tracker: null as GpuTracker | null,
  inputs: [] as TensorInfo[],
  outputs: [] as TensorInfo[],
  /** A parity check deferred to the next offload (its tolerance and probe), or null. */
  parityPending: null as { tolerance: number; probe?: Array<Record<string, WireTensor>> } | null,
};

function ramBytes(engine: SessionEngine | "none"): number {
  if (engine === "none") return 0;
  if (engine === "native") return state.spec?.modelBytes ?? 0;
  return wasmMemoryBytes();
}

/** How long a run reply may reuse the last RSS reading (reading it costs ~30 µs a reply). */
const RSS_REUSE_MS = 1_000;
let rss = { bytes: 0, at: -Infinity };

/**
 * The process's RSS: read afresh for every reply but a run's, which reuses a reading up to
 * {@link RSS_REUSE_MS} old (a run moves no weights; loads and moves read it anew).
 */
function rssBytes(fresh: boolean): number {
  const now = performance.now();
  if (fresh || now - rss.at > RSS_REUSE_MS) rss = { bytes: Deno.memoryUsage().rss, at: now };
  return rss.bytes;
}

function status(fresh = true): WorkerStatus {
  const engine = state.open?.engine ?? "none";
  return {
    device: state.device,
    gpuBuffers: state.tracker?.buffers ?? 0,
    gpuBytes: state.tracker?.bytes ?? 0,
    gpuPeakBytes: state.tracker?.peakBytes ?? 0,
    rssBytes: rssBytes(fresh),
    inputs: state.inputs,
    outputs: state.outputs,
    build: state.build,
    engine,
    ramBytes: ramBytes(engine),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- engines -------------------------------------------------------------------------------

async function webgpuOrt(): Promise<WebOrt> {
  if (state.build === "webgpu") return state.web!;
  const build = await importWebgpuBuild();
  state.tracker = build.tracker;
  state.web = build.ort;
  state.build = "webgpu";
  return build.ort;
}

async function wasmOrt(): Promise<WebOrt> {
  if (state.web) return state.web; // the WebGPU build's wasm EP serves the CPU as well
  const build = await importWasmBuild(state.spec?.numThreads ?? 1);
  state.web = build.ort;
  state.build = "wasm";
  return build.ort;
}

function nativeOrt(): NativeOrt {
  if (!state.native) {
    const dir = state.spec?.ortNodeDir;
    if (!dir) throw new WorkerFailure("load_failed", "The native engine needs ortNodeDir");
    state.native = loadNativeOrt(dir);
  }
  return state.native;
}

function tensorInfo(meta: OrtModule.InferenceSession.ValueMetadata): TensorInfo {
  if (!meta.isTensor) return { name: meta.name, type: null, dims: [] };
  const type = isTensorType(meta.type) ? meta.type : null;
  // Free dimensions come back as names ("N") or, from some models, as -1 read unsigned.
  const dims = meta.shape.map((d) => (typeof d === "number" && (d < 0 || d >= 2 ** 31) ? -1 : d));
  return { name: meta.name, type, dims };
}

/** Opens a session for `device` (without touching the current one). */
async function openSession(device: SessionDevice): Promise<Open> {
  const spec = state.spec;
  if (!spec) throw new WorkerFailure("not_loaded", "The worker has no model: send init first");
  const engine: SessionEngine = device === "gpu" ? "webgpu" : spec.cpuEngine;
  try {
    if (engine === "native") {
      const ort = nativeOrt();
      return {
        session: await createNativeSession(ort, spec.modelPath, spec.cpuThreads, spec.modelBytes),
        engine,
        api: ort,
      };
    }
    const ort = engine === "webgpu" ? await webgpuOrt() : await wasmOrt();
    state.tracker?.resetPeak();
    return {
      session: await createWebSession(ort, spec, engine === "webgpu" ? "webgpu" : "wasm"),
      engine,
      api: ort,
    };
  } catch (error) {
    if (error instanceof WorkerFailure) throw error;
    const code = device === "gpu" && isOutOfMemoryError(error) ? "oom" : "load_failed";
    throw new WorkerFailure(
      code,
      `Creating the ${device} session (${engine}) failed: ${describe(error)}`,
    );
  }
}

/** Makes `open` the worker's session. */
function adopt(open: Open, device: SessionDevice): void {
  state.open = open;
  state.device = device;
  state.inputs = open.session.inputMetadata.map(tensorInfo);
  state.outputs = open.session.outputMetadata.map(tensorInfo);
}

async function createSession(device: SessionDevice): Promise<void> {
  adopt(await openSession(device), device);
}

async function releaseSession(): Promise<void> {
  const open = state.open;
  state.open = null;
  state.device = "none";
  if (!open) return;
  await open.session.release();
}

// ---- running -------------------------------------------------------------------------------

/** Checks feeds against the session's declared inputs; throws bad_tensor naming the input. */
function checkFeeds(feeds: Record<string, WireTensor>): void {
  const problem = feedProblem(state.inputs, feeds);
  if (problem) throw new WorkerFailure("bad_tensor", problem);
}

async function infer(feeds: Record<string, WireTensor>): Promise<Record<string, WireTensor>> {
  const open = state.open;
  if (!open) throw new WorkerFailure("not_loaded", "No session: send load first");
  checkFeeds(feeds);
  const ortFeeds: Record<string, OrtModule.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    ortFeeds[name] = open.engine === "native" && t.type === "float16"
      ? nativeFloat16Tensor(open.api, t.data as Uint16Array, t.dims)
      : new open.api.Tensor(t.type, t.data as OrtModule.Tensor.DataType, t.dims);
  }
  const results = await open.session.run(ortFeeds);
  const out: Record<string, WireTensor> = {};
  for (const [name, tensor] of Object.entries(results)) {
    let data = tensor.data as WireTensor["data"];
    // float16 travels as its bits (the wire's Uint16Array), not as onnxruntime's Float16Array.
    if (tensor.type === "float16" && !(data instanceof Uint16Array)) {
      const view = data as unknown as Uint16Array;
      data = new Uint16Array(view.buffer, view.byteOffset, view.length);
    }
    // Own the buffer outright, so it can be transferred (string data is cloned, not transferred).
    if (
      !Array.isArray(data) &&
      (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength)
    ) data = data.slice();
    out[name] = { type: tensor.type as TensorType, dims: [...tensor.dims], data };
  }
  return out;
}

async function run(input: RunInput): Promise<RunOutput> {
  if (input.kind === "tensors") return { kind: "tensors", tensors: await infer(input.tensors) };
  throw new WorkerFailure(
    "bad_input",
    state.spec?.pluginUrl
      ? `Model "${state.spec.modelId}": its plugin runs in its own process, not in the engine worker`
      : `Model "${state.spec?.modelId}" has no plugin: send tensors`,
  );
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
      : type === "uint64"
      ? new BigUint64Array(count).fill(1n)
      : type === "string"
      ? Array.from({ length: count }, () => "1")
      : new TENSOR_ARRAYS[type](count).fill(1);
    feeds[info.name] = { type, dims, data };
  }
  return feeds;
}

/** Runs each probe input with `open`, returning every raw output of every run, in order. */
async function probeOutputs(
  open: Open,
  probe: Array<Record<string, WireTensor>>,
): Promise<WireTensor[]> {
  const saved = state.open;
  const seen: WireTensor[] = [];
  state.open = open;
  try {
    for (const feeds of probe) {
      // Copies: infer may transfer or reuse the callers' buffers.
      const copy: Record<string, WireTensor> = {};
      for (const [name, t] of Object.entries(feeds)) copy[name] = { ...t, data: t.data.slice() };
      const out = await infer(copy);
      for (const name of Object.keys(out).sort()) seen.push(out[name]);
    }
  } finally {
    state.open = saved;
  }
  return seen;
}

/**
 * Runs one probe on the GPU session and on `cpu`, and compares every output: the
 * plugin's recorded session inputs when given, else one generated from the input shapes.
 */
async function compare(
  gpuOpen: Open,
  cpu: Open,
  tolerance: number,
  pluginProbe: Array<Record<string, WireTensor>> | undefined,
): Promise<ParityResult> {
  const isPlugin = pluginProbe !== undefined && pluginProbe.length > 0;
  const probe = isPlugin ? pluginProbe : [generatedProbe()];
  const gpuOut = await probeOutputs(gpuOpen, probe);
  const cpuOut = await probeOutputs(cpu, probe);
  let maxAbsError = 0;
  let elements = 0;
  if (gpuOut.length !== cpuOut.length) maxAbsError = Infinity;
  for (let i = 0; i < Math.min(gpuOut.length, cpuOut.length) && maxAbsError !== Infinity; i++) {
    const a = gpuOut[i].data;
    const b = cpuOut[i].data;
    if (a.length !== b.length) {
      maxAbsError = Infinity;
      break;
    }
    for (let j = 0; j < a.length; j++) {
      const diff = typeof a[j] === "string"
        ? (a[j] === b[j] ? 0 : Infinity)
        : Math.abs(Number(a[j]) - Number(b[j]));
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

/**
 * The GPU/CPU parity check. The rule that keeps it from doubling a big model's memory: up
 * to `parityAtLoadMaxBytes` it compares against a temporary CPU session now; above, it
 * creates no session of its own and runs at the next offload, which creates the CPU
 * session anyway (see {@link offload}).
 */
async function parity(
  tolerance: number,
  probe: Array<Record<string, WireTensor>> | undefined,
): Promise<ParityReply> {
  const open = state.open;
  if (state.device !== "gpu" || !open) {
    throw new WorkerFailure("not_loaded", "The parity check needs the session on the GPU");
  }
  const spec = state.spec!;
  if (spec.modelBytes > spec.parityAtLoadMaxBytes) {
    state.parityPending = { tolerance, probe };
    return {
      parityDeferred:
        `the model's ${spec.modelBytes} bytes are above ${spec.parityAtLoadMaxBytes}: ` +
        "the check runs at the first offload, when the CPU session exists anyway",
    };
  }
  const cpu = await openSession("cpu");
  try {
    return { parity: await compare(open, cpu, tolerance, probe) };
  } finally {
    await cpu.session.release();
  }
}

// ---- requests ------------------------------------------------------------------------------

async function init(spec: PipelineSpec): Promise<void> {
  if (state.spec) {
    throw new WorkerFailure("internal", `This worker already serves "${state.spec.modelId}"`);
  }
  for (const path of [spec.modelPath, ...spec.externalData.map((f) => f.path)]) {
    try {
      await Deno.stat(path);
    } catch (error) {
      throw new WorkerFailure(
        "load_failed",
        `Cannot read model file "${path}": ${describe(error)}`,
      );
    }
  }
  state.spec = spec;
}

async function load(device: SessionDevice): Promise<void> {
  if (state.open && state.device === device) return;
  await releaseSession();
  await createSession(device);
}

/** Warns when GPU buffers outlive their session. */
function checkGpuReleased(): void {
  const left = state.tracker;
  if (left && (left.buffers !== 0 || left.bytes !== 0)) {
    console.warn(
      `offload: ${left.buffers} GPU buffers (${left.bytes} bytes) still alive after release()`,
    );
  }
}

/**
 * GPU → CPU. Normally the GPU session goes first, then the CPU session is created (one
 * copy of the weights at a time). With a deferred parity check pending, the CPU session
 * is created first, the probe runs on both, then the GPU session goes: the check costs
 * no session of its own. Returns the parity result when one ran.
 */
async function offload(): Promise<Replies["offload"]> {
  if (state.device !== "gpu" || !state.open) {
    throw new WorkerFailure(
      "not_loaded",
      `Nothing to offload: the session is on "${state.device}"`,
    );
  }
  const pending = state.parityPending;
  if (pending === null) {
    await releaseSession();
    checkGpuReleased();
    await createSession("cpu");
    return {};
  }
  const gpu = state.open;
  const cpu = await openSession("cpu");
  let result: ParityResult | undefined;
  try {
    result = await compare(gpu, cpu, pending.tolerance, pending.probe);
    state.parityPending = null;
  } catch (error) {
    console.warn(`offload: the deferred parity check failed: ${describe(error)}`);
  }
  await releaseSession();
  checkGpuReleased();
  adopt(cpu, "cpu");
  return result ? { parity: result } : {};
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

/** What each kind of request does: its reply's own fields, by kind (errors are thrown). */
const handlers: { [K in RequestKind]: (req: RequestOf<K>) => Promise<Replies[K]> } = {
  init: async (req) => (await init(req.spec), {}),
  load: async (req) => (await load(req.device), {}),
  run: async (req) => ({ output: await run(req.input) }),
  offload: () => offload(),
  rehydrate: async () => (await rehydrate(), {}),
  unload: async () => (await releaseSession(), {}),
  status: () => Promise.resolve({}),
  parity: (req) => parity(req.tolerance, req.probe),
};

/** Runs one request: its reply's own fields, or a thrown failure. */
function handle<K extends RequestKind>(req: RequestOf<K>): Promise<Replies[K]> {
  if (req.type !== "init" && req.type !== "status" && !state.spec) {
    throw new WorkerFailure("not_loaded", `"${req.type}" before init: send init first`);
  }
  const handler = Object.hasOwn(handlers, req.type)
    ? handlers[req.type] as (req: RequestOf<K>) => Promise<Replies[K]>
    : undefined;
  if (!handler) {
    throw new WorkerFailure("internal", `Unknown request type "${req.type}"`);
  }
  return handler(req);
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
  postMessage(message: PostedReply, transfer: Transferable[]): void;
}).postMessage.bind(globalThis);

/** The status the last reply carried (a run reply leaves out one equal to it). */
let lastSent: WorkerStatus | null = null;

/** True when `a` says what `b` said: the same figures, the same inputs and outputs. */
function sameStatus(a: WorkerStatus, b: WorkerStatus | null): boolean {
  if (b === null) return false;
  for (const key of Object.keys(a) as Array<keyof WorkerStatus>) {
    if (a[key] !== b[key]) return false; // inputs and outputs: replaced, never changed in place
  }
  return true;
}

async function serve(req: WorkerRequest): Promise<void> {
  const start = performance.now();
  let reply: WorkerReply;
  let posted: PostedReply | undefined; // the reply as sent, when it differs from `reply`
  let transfer: Transferable[] = [];
  try {
    const fields = await handle(req);
    const ms = performance.now() - start;
    // A GPU out-of-memory error reported during the request makes its results unreliable.
    if (state.tracker && state.tracker.oomErrors > oomSeen) {
      throw new WorkerFailure("oom", `The GPU ran out of memory during ${req.type}`);
    }
    // The handlers table types `fields` by kind; the common fields are the same for all.
    reply = {
      id: req.id,
      type: req.type,
      ok: true,
      status: status(req.type !== "run"),
      ms,
      ...fields,
    } as WorkerReply;
    if (req.type === "run" && sameStatus(reply.status, lastSent)) {
      const { status: _unchanged, ...lean } = reply as OkReply<"run">;
      posted = lean;
    }
    const output = (fields as Partial<Replies["run"]>).output;
    if (output?.kind === "tensors") transfer = transferablesOf(output.tensors);
  } catch (error) {
    reply = {
      id: req.id,
      type: req.type,
      ok: false,
      status: status(),
      error: toError(error, req),
      ms: performance.now() - start,
    };
  }
  oomSeen = state.tracker?.oomErrors ?? 0;
  lastSent = reply.status;
  try {
    post(posted ?? reply, transfer);
  } catch (error) {
    // An output the structured clone cannot carry (a plugin returned a function, say).
    lastSent = status();
    post({
      id: req.id,
      type: req.type,
      ok: false,
      status: lastSent,
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

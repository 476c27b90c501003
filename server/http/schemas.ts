/**
 * Zod schemas of the bodies more than one route takes or answers: the boundary types of
 * core/types.ts as the OpenAPI document describes them. Each is checked against its
 * TypeScript type (`satisfies z.ZodType<T>`), and tests/openapi_test.ts checks real answers
 * against them, so neither can drift from what the server sends. A schema only one route
 * uses lives in that route's file; no route imports another route's schema.
 * @module
 */
import { z } from "zod";
import { SETTINGS } from "../../core/config.ts";
import type {
  CpuEngineReport,
  DeviceSnapshot,
  ErrorBody,
  GpuMismatch,
  HeadroomEvent,
  MemoryProfile,
  ModelAction,
  ModelRow,
  SchedulerStatus,
  TransitionFigures,
  VramReport,
  VramSample,
} from "../../core/types.ts";
import { PRIORITIES } from "../../core/types.ts";
import type { FitResult } from "../../core/placement/budget.ts";
import type { ReleaseOutcome } from "../../core/placement/types.ts";

/** Every error answer: `{error: {code, message}}` (on `/v1/` paths also OpenAI's `type` and `param`). */
export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    type: z.string().optional(),
    param: z.string().nullable().optional(),
  }),
}) satisfies z.ZodType<ErrorBody>;

/** The error body under `/v2`: the Open Inference Protocol's `{"error": "…"}`. */
export const oipErrorBodySchema = z.object({ error: z.string() });

/** A request's list of catalog ids (the pre-flight check and chains take it). */
export const pipelineListSchema = z.array(z.string().min(1).max(64)).min(
  1,
  "must name at least one pipeline",
)
  .max(256, "must name at most 256 pipelines");

const placement = z.enum(["gpu", "cpu", "none"]);
const pipelineState = z.enum([
  "unloaded",
  "loading",
  "gpu",
  "cpu",
  "offloading",
  "rehydrating",
  "failed",
]);
const sessionEngine = z.enum(["native", "wasm", "webgpu"]);

/** One device's memory and load at one instant. */
export const deviceSnapshotSchema = z.object({
  index: z.number(),
  name: z.string(),
  uuid: z.string(),
  totalBytes: z.number(),
  usedBytes: z.number(),
  freeBytes: z.number(),
  reservedBytes: z.number(),
  reservedUnknown: z.string().optional(),
  reservedFrom: z.array(z.enum(["compute", "graphics"])).optional(),
  activeBytes: z.number(),
  utilizationPercent: z.number().nullable(),
  temperatureC: z.number().nullable(),
  state: z.enum(["ok", "error", "lost"]),
  error: z.string().optional(),
  takenAt: z.number(),
}) satisfies z.ZodType<DeviceSnapshot>;

/** One sample of every device. */
export const vramSampleSchema = z.object({
  takenAt: z.number(),
  devices: z.array(deviceSnapshotSchema),
}) satisfies z.ZodType<VramSample>;

const transitionKind = z.enum(["load:gpu", "load:cpu", "offload", "rehydrate", "unload"]);

const transitionFiguresSchema = z.object({
  kind: transitionKind,
  ms: z.number(),
  gpuBytes: z.number(),
  rssDeltaBytes: z.number(),
  ramBytes: z.number(),
  deviceUsedDeltaBytes: z.number().nullable(),
  at: z.number(),
}) satisfies z.ZodType<TransitionFigures>;

const schedulerStatusSchema = z.object({
  budgetBytes: z.number(),
  headroomBytes: z.number(),
  availableBytes: z.number(),
  onInsufficientVram: SETTINGS.onInsufficientVram.schema,
  mode: SETTINGS.mode.schema,
  releasingBytes: z.number(),
  section: z.string().nullable(),
  pipelines: z.array(z.object({
    id: z.string(),
    activeCount: z.number(),
    pinned: z.boolean(),
    lastUsedAt: z.number(),
    idleMs: z.number(),
    keepAliveDeadline: z.number().nullable(),
    idleAction: SETTINGS.idleAction.schema,
    priority: z.enum(PRIORITIES),
  })),
}) satisfies z.ZodType<SchedulerStatus>;

/** What every event carries. */
const eventBase = {
  seq: z.number(),
  at: z.number(),
  pipeline: z.string().nullable(),
  message: z.string(),
  model: z.string().nullable().optional(),
  trigger: z.string().optional(),
};

/** One schema per event kind, each with its own fields (HeadroomEvent in core/types.ts). */
const headroomEventSchema = z.discriminatedUnion("kind", [
  z.object({
    ...eventBase,
    kind: z.literal("transition"),
    reason: transitionKind,
    figures: transitionFiguresSchema,
    bytes: z.number(),
  }),
  z.object({
    ...eventBase,
    kind: z.literal("eviction"),
    reason: z.string(),
    reasonCode: z.enum(["make_room", "oom", "headroom"]),
    bytes: z.number(),
    idleMs: z.number().nullable(),
  }),
  z.object({ ...eventBase, kind: z.literal("oom"), reason: z.string() }),
  z.object({ ...eventBase, kind: z.literal("leak"), reason: z.string(), bytes: z.number() }),
  z.object({
    ...eventBase,
    kind: z.literal("release"),
    reason: z.enum(["release confirmed", "release not shown"]),
    bytes: z.number(),
  }),
  z.object({
    ...eventBase,
    kind: z.literal("placement"),
    reason: z.string(),
    bytes: z.number().optional(),
  }),
  z.object({
    ...eventBase,
    kind: z.enum(["switch", "auto-switch"]),
    reason: z.string(),
    bytes: z.number(),
    vramMb: z.number(),
    ramMb: z.number(),
  }),
  z.object({ ...eventBase, kind: z.literal("keep-alive"), reason: z.string(), idleMs: z.number() }),
  z.object({ ...eventBase, kind: z.literal("mismatch"), reason: z.string() }),
  z.object({
    ...eventBase,
    kind: z.literal("batch"),
    reason: z.enum(["largest", "capped"]),
    rows: z.number(),
    ms: z.number(),
    gpuPeakBytes: z.number(),
    capRows: z.number().optional(),
  }),
  z.object({
    ...eventBase,
    kind: z.literal("failure"),
    reason: z.string().optional(),
    attempt: transitionKind.optional(),
  }),
  z.object({ ...eventBase, kind: z.literal("info"), attempt: transitionKind.optional() }),
  z.object({
    ...eventBase,
    kind: z.enum(["recovery", "device"]),
    reason: z.string().optional(),
  }),
]) satisfies z.ZodType<HeadroomEvent>;

const cpuEngineSchema = z.object({
  configured: SETTINGS.cpuEngine.schema,
  engine: z.enum(["native", "wasm"]),
  reason: z.string(),
  threads: z.number(),
  ortNodeDir: z.string(),
}) satisfies z.ZodType<CpuEngineReport>;

/** What was last measured of one model on one device kind. */
export const memoryProfileSchema = z.object({
  modelId: z.string(),
  device: z.enum(["gpu", "cpu"]),
  shape: z.string(),
  gpuLoadBytes: z.number().nullable(),
  gpuPeakBytes: z.number().nullable(),
  deviceUsedDeltaBytes: z.number().nullable(),
  rssDeltaBytes: z.number().nullable(),
  ramBytes: z.number().nullable().optional(),
  loadMs: z.number().nullable(),
  offloadMs: z.number().nullable(),
  rehydrateMs: z.number().nullable(),
  measuredAt: z.number(),
}) satisfies z.ZodType<MemoryProfile>;

const gpuMismatchSchema = z.object({
  maxAbsError: z.number(),
  tolerance: z.number(),
  checkedAt: z.number(),
}) satisfies z.ZodType<GpuMismatch>;

const ioSchema = z.object({
  name: z.string(),
  type: z.string().nullable(),
  dims: z.array(z.union([z.number(), z.string()])),
});

/**
 * One model's row, wherever the server sends one (`GET /api/v1/models`, `GET
 * /api/v1/models/{id}`, what the moves answer, `models` of the VRAM report).
 */
export const modelRowSchema = z.object({
  id: z.string(),
  name: z.string(),
  tags: z.array(z.string()),
  plugin: z.boolean(),
  state: pipelineState,
  placement,
  gpuBytes: z.number(),
  gpuBuffers: z.number(),
  gpuPeakBytes: z.number(),
  rssBytes: z.number(),
  ramBytes: z.number(),
  pluginRssBytes: z.number().nullable(),
  engine: sessionEngine.nullable(),
  modelBytes: z.number().nullable(),
  error: z.string().nullable(),
  lastTransition: transitionFiguresSchema.nullable(),
  gpuMismatch: gpuMismatchSchema.nullable(),
  lastUsedAt: z.number().nullable(),
  display: z.enum(["loaded", "unloaded", "never"]),
  gpuProfile: memoryProfileSchema.nullable(),
  cpuProfile: memoryProfileSchema.nullable(),
  leak: z.string().nullable(),
  pinned: z.boolean(),
  keepAliveDeadline: z.number().nullable(),
  cpuReason: z.string().nullable(),
  inputs: z.array(ioSchema),
  outputs: z.array(ioSchema),
  batch: z.object({
    max: z.number(),
    delayMs: z.number(),
    capRows: z.number().nullable(),
    active: z.boolean().nullable(),
    largestRows: z.number(),
    runs: z.number(),
    rows: z.number(),
    runsByRows: z.record(z.string(), z.number()),
  }).nullable(),
  activeCount: z.number(),
  idleMs: z.number(),
  idleAction: SETTINGS.idleAction.schema,
  actions: z.array(
    z.enum(["load-gpu", "load-cpu", "offload", "unload", "pin", "unpin"] satisfies ModelAction[]),
  ),
  takenAt: z.number(),
}) satisfies z.ZodType<ModelRow>;

/** The body of `GET /api/v1/hardware/vram` (and of each SSE `snapshot` event). */
/** What the store could keep: `degraded` after a write failed (a full disk), with the counts. */
export const storageHealthSchema = z.object({
  state: z.enum(["ok", "degraded"]),
  droppedWrites: z.number(),
  droppedEvents: z.number(),
  skippedValues: z.number(),
  lastError: z.string().nullable(),
});

export const vramReportSchema = z.object({
  source: z.enum(["nvml", "cudart", "webgpu", "none"]),
  reason: z.string().nullable(),
  driverVersion: z.string().nullable(),
  devices: z.array(deviceSnapshotSchema),
  scheduler: schedulerStatusSchema.optional(),
  events: z.array(headroomEventSchema).optional(),
  cpuEngine: cpuEngineSchema.optional(),
  models: z.array(modelRowSchema).optional(),
  storage: storageHealthSchema.optional(),
  takenAt: z.number(),
}) satisfies z.ZodType<VramReport>;

const releaseOutcomeSchema = z.object({
  confirmed: z.boolean(),
  bytes: z.number(),
  ms: z.number(),
  checked: z.boolean(),
}) satisfies z.ZodType<ReleaseOutcome>;

/** What offload and unload answer: the model after the move, and whether the driver showed the memory back. */
export const releasedModelSchema = modelRowSchema.extend({ release: releaseOutcomeSchema });

/** The answer of a pre-flight check (and the check a chain was made with). */
export const fitResultSchema = z.object({
  fits: z.boolean(),
  message: z.string(),
  neededBytes: z.number(),
  availableBytes: z.number(),
  headroomBytes: z.number(),
  wouldEvict: z.array(z.object({
    id: z.string(),
    bytes: z.number(),
    idleMs: z.number().nullable(),
  })),
  estimates: z.array(z.object({
    id: z.string(),
    bytes: z.number(),
    basis: z.enum(["profile", "tracked", "file"]),
  })),
}) satisfies z.ZodType<FitResult>;

/** One entry of `GET /v1/models`, as OpenAI's clients read it. */
export const openAiModelSchema = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.number(),
  owned_by: z.string(),
});

/** An OpenAI model entry. */
export type OpenAiModel = z.infer<typeof openAiModelSchema>;

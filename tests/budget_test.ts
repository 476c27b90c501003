import assert from "node:assert/strict";
import {
  availableBytes,
  canFitChain,
  chooseEvictions,
  estimateChainVram,
  estimateModelVram,
  FILE_SIZE_FACTOR,
  gpuBytesOf,
  type GpuState,
  type ModelFootprint,
  type PlacedPipeline,
} from "../core/placement/budget.ts";
import { formatBytes } from "../core/units.ts";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const NOW = 1_000_000;

function model(id: string, bytes: number, extra: Partial<ModelFootprint> = {}): ModelFootprint {
  return { id, fileBytes: 0, trackedBytes: null, profileBytes: bytes, ...extra };
}

function onGpu(id: string, bytes: number, extra: Partial<PlacedPipeline> = {}): PlacedPipeline {
  return {
    id,
    placement: "gpu",
    gpuBytes: bytes,
    lastUsedAt: NOW - 60_000,
    activeCount: 0,
    pinned: false,
    priority: "normal",
    ...extra,
  };
}

function gpu(extra: Partial<GpuState> = {}): GpuState {
  return {
    available: true,
    deviceFreeBytes: 10 * GiB,
    budgetBytes: 16 * GiB,
    headroomBytes: 1 * GiB,
    pipelines: [],
    now: NOW,
    ...extra,
  };
}

// --- estimateModelVram ----------------------------------------------------------------

const estimateCases: Array<{
  name: string;
  footprint: ModelFootprint;
  bytes: number;
  basis: "profile" | "tracked" | "file";
}> = [
  {
    name: "a saved profile wins over tracked bytes and the file",
    footprint: { id: "m", fileBytes: 100 * MiB, trackedBytes: 300 * MiB, profileBytes: 400 * MiB },
    bytes: 400 * MiB,
    basis: "profile",
  },
  {
    name: "tracked bytes come next when no profile was saved",
    footprint: { id: "m", fileBytes: 100 * MiB, trackedBytes: 300 * MiB, profileBytes: null },
    bytes: 300 * MiB,
    basis: "tracked",
  },
  {
    name: "a zero profile counts as no profile",
    footprint: { id: "m", fileBytes: 100 * MiB, trackedBytes: 300 * MiB, profileBytes: 0 },
    bytes: 300 * MiB,
    basis: "tracked",
  },
  {
    name: "file size × factor when nothing was measured",
    footprint: { id: "m", fileBytes: 100 * MiB, trackedBytes: null, profileBytes: null },
    bytes: Math.ceil(100 * MiB * FILE_SIZE_FACTOR),
    basis: "file",
  },
  {
    name: "zero tracked bytes fall through to the file",
    footprint: { id: "m", fileBytes: 3, trackedBytes: 0, profileBytes: null },
    bytes: Math.ceil(3 * FILE_SIZE_FACTOR),
    basis: "file",
  },
  {
    name: "a model with no figures at all estimates 0 bytes",
    footprint: { id: "m", fileBytes: 0, trackedBytes: null, profileBytes: null },
    bytes: 0,
    basis: "file",
  },
];

for (const c of estimateCases) {
  Deno.test(`estimateModelVram - ${c.name}`, () => {
    assert.deepEqual(estimateModelVram(c.footprint), { id: "m", bytes: c.bytes, basis: c.basis });
  });
}

Deno.test("estimateChainVram - sums every member's best estimate, in chain order", () => {
  const chain = [
    model("det", 40 * MiB),
    { id: "cls", fileBytes: 2 * MiB, trackedBytes: 5 * MiB, profileBytes: null },
    { id: "rec", fileBytes: 10 * MiB, trackedBytes: null, profileBytes: null },
  ];
  const result = estimateChainVram(chain);
  assert.deepEqual(result.models.map((m) => [m.id, m.basis]), [
    ["det", "profile"],
    ["cls", "tracked"],
    ["rec", "file"],
  ]);
  assert.equal(result.totalBytes, 40 * MiB + 5 * MiB + Math.ceil(10 * MiB * FILE_SIZE_FACTOR));
  assert.deepEqual(estimateChainVram([]), { totalBytes: 0, models: [] });
});

// --- availableBytes -------------------------------------------------------------------

const availableCases: Array<{ name: string; state: GpuState; expected: number }> = [
  {
    name: "device free is the limit when it is smaller than the budget left",
    state: gpu({ deviceFreeBytes: 5 * GiB, budgetBytes: 16 * GiB }),
    expected: 4 * GiB,
  },
  {
    name: "the budget left is the limit when it is smaller than device free",
    state: gpu({
      deviceFreeBytes: 10 * GiB,
      budgetBytes: 8 * GiB,
      pipelines: [onGpu("a", 3 * GiB), onGpu("b", 2 * GiB)],
    }),
    expected: 2 * GiB,
  },
  {
    name: "pipelines off the GPU count nothing against the budget",
    state: gpu({
      deviceFreeBytes: 10 * GiB,
      budgetBytes: 8 * GiB,
      pipelines: [onGpu("a", 3 * GiB, { placement: "cpu" }), onGpu("b", 2 * GiB)],
    }),
    expected: 5 * GiB,
  },
  {
    name: "goes negative when free VRAM is already below the headroom",
    state: gpu({ deviceFreeBytes: 512 * MiB, headroomBytes: 1 * GiB }),
    expected: -512 * MiB,
  },
  {
    // issue 21 item 11: without a GPU the API and /metrics read −1,610,612,736 (−1.5 GiB).
    name: "no GPU usable: 0, never the headroom as a shortfall",
    state: gpu({ available: false, deviceFreeBytes: 0, budgetBytes: 0, headroomBytes: 1.5 * GiB }),
    expected: 0,
  },
];

for (const c of availableCases) {
  Deno.test(`availableBytes - ${c.name}`, () => {
    assert.equal(availableBytes(c.state, gpuBytesOf(c.state)), c.expected);
  });
}

// --- chooseEvictions ------------------------------------------------------------------

Deno.test("chooseEvictions - least recently used first, ties by id, only as many as the shortfall", () => {
  const state = gpu({
    pipelines: [
      onGpu("c", 1 * GiB, { lastUsedAt: NOW - 10_000 }),
      onGpu("b", 1 * GiB, { lastUsedAt: NOW - 30_000 }),
      onGpu("a", 1 * GiB, { lastUsedAt: NOW - 30_000 }),
      onGpu("d", 1 * GiB, { lastUsedAt: NOW - 5_000 }),
    ],
  });
  assert.deepEqual(chooseEvictions(state, 1, new Set()), [
    { id: "a", bytes: 1 * GiB, idleMs: 30_000 },
  ]);
  assert.deepEqual(
    chooseEvictions(state, 1 * GiB + 1, new Set()).map((e) => e.id),
    ["a", "b"],
  );
  assert.deepEqual(chooseEvictions(state, 3 * GiB, new Set()).map((e) => e.id), ["a", "b", "c"]);
  // More than there is: every candidate, and the caller sees that they are not enough.
  assert.deepEqual(chooseEvictions(state, 100 * GiB, new Set()).map((e) => e.id), [
    "a",
    "b",
    "c",
    "d",
  ]);
});

Deno.test("chooseEvictions - lower priority first, then least recently used: a low one used just now goes before a normal one idle for long", () => {
  const state = gpu({
    pipelines: [
      onGpu("high-old", 1 * GiB, { priority: "high", lastUsedAt: NOW - 90_000 }),
      onGpu("normal-old", 1 * GiB, { lastUsedAt: NOW - 60_000 }),
      onGpu("low-new", 1 * GiB, { priority: "low", lastUsedAt: NOW - 1_000 }),
      onGpu("low-old", 1 * GiB, { priority: "low", lastUsedAt: NOW - 2_000 }),
      onGpu("normal-new", 1 * GiB, { lastUsedAt: NOW - 10 }),
    ],
  });
  assert.deepEqual(chooseEvictions(state, 5 * GiB, new Set()).map((e) => e.id), [
    "low-old",
    "low-new",
    "normal-old",
    "normal-new",
    "high-old",
  ]);
  // Only the shortfall: one low one is enough.
  assert.deepEqual(chooseEvictions(state, 1, new Set()).map((e) => e.id), ["low-old"]);
});

Deno.test("chooseEvictions - nothing when the shortfall is zero or negative", () => {
  const state = gpu({ pipelines: [onGpu("a", 1 * GiB)] });
  assert.deepEqual(chooseEvictions(state, 0, new Set()), []);
  assert.deepEqual(chooseEvictions(state, -5, new Set()), []);
});

Deno.test("chooseEvictions - never active, pinned, excluded, off-GPU or empty pipelines", () => {
  const state = gpu({
    pipelines: [
      onGpu("active", 1 * GiB, { activeCount: 1, lastUsedAt: 0 }),
      onGpu("pinned", 1 * GiB, { pinned: true, lastUsedAt: 0 }),
      onGpu("excluded", 1 * GiB, { lastUsedAt: 0 }),
      onGpu("on-cpu", 1 * GiB, { placement: "cpu", lastUsedAt: 0 }),
      onGpu("unloaded", 1 * GiB, { placement: "none", lastUsedAt: 0 }),
      onGpu("empty", 0, { lastUsedAt: 0 }),
      onGpu("idle", 1 * GiB, { lastUsedAt: NOW - 1 }),
    ],
  });
  assert.deepEqual(chooseEvictions(state, 10 * GiB, new Set(["excluded"])), [
    { id: "idle", bytes: 1 * GiB, idleMs: 1 },
  ]);
});

// --- canFitChain ----------------------------------------------------------------------

interface FitCase {
  name: string;
  chain: ModelFootprint[];
  state: GpuState;
  fits: boolean;
  needed: number;
  available: number;
  evict: string[];
  /** Every fragment must appear in the message. */
  says: string[];
}

const H = 1 * GiB; // the headroom of every case below
const fitCases: FitCase[] = [
  {
    name: "an empty chain needs nothing and fits",
    chain: [],
    state: gpu(),
    fits: true,
    needed: 0,
    available: 9 * GiB,
    evict: [],
    says: ["An empty chain needs nothing."],
  },
  {
    name: "members already loaded cost nothing more",
    chain: [model("det", 2 * GiB), model("rec", 1 * GiB)],
    state: gpu({ deviceFreeBytes: 2 * GiB, pipelines: [onGpu("det", 2 * GiB)] }),
    fits: true,
    needed: 1 * GiB,
    available: 1 * GiB,
    evict: [],
    says: ["det → rec fits", `needs ${formatBytes(GiB)}`, `${formatBytes(GiB)} free above`],
  },
  {
    name: "a chain wholly on the GPU needs nothing more",
    chain: [model("det", 2 * GiB), model("rec", 1 * GiB)],
    state: gpu({
      deviceFreeBytes: 0,
      pipelines: [onGpu("det", 2 * GiB), onGpu("rec", 1 * GiB)],
    }),
    fits: true,
    needed: 0,
    available: -H,
    evict: [],
    says: ["det → rec is already on the GPU: it needs nothing more."],
  },
  {
    name: "exactly at the threshold fits, with nothing to evict",
    chain: [model("m", 3 * GiB)],
    state: gpu({ deviceFreeBytes: 3 * GiB + H, pipelines: [onGpu("old", 1 * GiB)] }),
    fits: true,
    needed: 3 * GiB,
    available: 3 * GiB,
    evict: [],
    says: ["m fits: needs 3.00 GiB, 3.00 GiB free above the 1.00 GiB headroom."],
  },
  {
    name: "one byte over fits only after evicting the least recently used idle pipeline",
    chain: [model("m", 3 * GiB + 1)],
    state: gpu({
      deviceFreeBytes: 3 * GiB + H,
      pipelines: [
        onGpu("newer", 1 * GiB, { lastUsedAt: NOW - 1_000 }),
        onGpu("older", 512 * MiB, { lastUsedAt: NOW - 9_000 }),
      ],
    }),
    fits: true,
    needed: 3 * GiB + 1,
    available: 3 * GiB,
    evict: ["older"],
    says: ["m fits after moving older to the CPU", "needs 3.00 GiB", "short by 1 B."],
  },
  {
    name: "one byte over with nothing idle to evict does not fit and says by how much",
    chain: [model("m", 3 * GiB + 1)],
    state: gpu({
      deviceFreeBytes: 3 * GiB + H,
      pipelines: [
        onGpu("busy", 1 * GiB, { activeCount: 2 }),
        onGpu("pinned", 1 * GiB, { pinned: true }),
      ],
    }),
    fits: false,
    needed: 3 * GiB + 1,
    available: 3 * GiB,
    evict: [],
    says: [
      "m does not fit: needs 3.00 GiB, 3.00 GiB free above the 1.00 GiB headroom",
      "evicting every idle pipeline frees 0 B, still short by 1 B.",
    ],
  },
  {
    name: "not enough even after evicting every idle pipeline",
    chain: [model("big", 6 * GiB)],
    state: gpu({
      deviceFreeBytes: 1 * GiB + H,
      pipelines: [onGpu("a", 2 * GiB), onGpu("b", 1 * GiB, { lastUsedAt: NOW - 120_000 })],
    }),
    fits: false,
    needed: 6 * GiB,
    available: 1 * GiB,
    evict: [],
    says: ["big does not fit", "frees 3.00 GiB, still short by 2.00 GiB."],
  },
  {
    name: "members of the chain are never evicted to make room for the chain",
    chain: [model("det", 1 * GiB), model("rec", 2 * GiB)],
    state: gpu({
      deviceFreeBytes: H,
      pipelines: [
        onGpu("det", 1 * GiB, { lastUsedAt: 0 }),
        onGpu("other", 2 * GiB, { lastUsedAt: NOW - 1_000 }),
      ],
    }),
    fits: true,
    needed: 2 * GiB,
    available: 0,
    evict: ["other"],
    says: ["det → rec fits after moving other to the CPU", "short by 2.00 GiB."],
  },
  {
    name: "below the headroom already: the shortfall covers the deficit too",
    chain: [model("m", 1 * GiB)],
    state: gpu({
      deviceFreeBytes: H - 256 * MiB,
      pipelines: [
        onGpu("a", 1 * GiB, { lastUsedAt: NOW - 3_000 }),
        onGpu("b", 1 * GiB, { lastUsedAt: NOW - 2_000 }),
      ],
    }),
    fits: true,
    needed: 1 * GiB,
    available: -256 * MiB,
    evict: ["a", "b"],
    says: ["0 B free above the headroom", "short by 1.25 GiB."],
  },
  {
    name: "no GPU: does not fit and says it runs on the CPU",
    chain: [model("det", 1 * MiB), model("rec", 1 * MiB)],
    state: gpu({ available: false, deviceFreeBytes: 0, budgetBytes: 0, headroomBytes: 0 }),
    fits: false,
    needed: 2 * MiB,
    available: 0,
    evict: [],
    says: ["No GPU is usable: det → rec would run on the CPU."],
  },
  {
    name: "no GPU: even an empty chain does not fit",
    chain: [],
    state: gpu({ available: false, deviceFreeBytes: 0, budgetBytes: 0, headroomBytes: 0 }),
    fits: false,
    needed: 0,
    available: 0,
    evict: [],
    says: ["No GPU is usable: (empty chain) would run on the CPU."],
  },
  {
    name: "a model with no figures (0-byte file, never measured) fits, and the message says so",
    chain: [{ id: "mystery", fileBytes: 0, trackedBytes: null, profileBytes: null }],
    state: gpu({ deviceFreeBytes: H }),
    fits: true,
    needed: 0,
    available: 0,
    evict: [],
    says: ["mystery", "no size is known for mystery"],
  },
  {
    name: "a member with no figures beside a measured one is counted as 0 B, and said so",
    chain: [
      model("det", 1 * GiB),
      { id: "mystery", fileBytes: 0, trackedBytes: null, profileBytes: null },
    ],
    state: gpu({ deviceFreeBytes: 2 * GiB + H }),
    fits: true,
    needed: 1 * GiB,
    available: 2 * GiB,
    evict: [],
    says: ["det → mystery fits: needs 1.00 GiB", "no size is known for mystery"],
  },
  {
    name: "a model listed twice in a chain is loaded once and counted once",
    chain: [model("det", 2 * GiB), model("cls", 1 * GiB), model("det", 2 * GiB)],
    state: gpu({ deviceFreeBytes: 3 * GiB + H }),
    fits: true,
    needed: 3 * GiB,
    available: 3 * GiB,
    evict: [],
    says: ["det → cls → det fits: needs 3.00 GiB"],
  },
];

for (const c of fitCases) {
  Deno.test(`canFitChain - ${c.name}`, () => {
    const result = canFitChain(c.chain, c.state);
    const context = `message: ${result.message}`;
    assert.equal(result.fits, c.fits, context);
    assert.equal(result.neededBytes, c.needed, context);
    assert.equal(result.availableBytes, c.available, context);
    assert.equal(result.headroomBytes, c.state.headroomBytes);
    assert.deepEqual(result.wouldEvict.map((e) => e.id), c.evict, context);
    assert.equal(result.estimates.length, c.chain.length);
    for (const fragment of c.says) {
      assert.ok(
        result.message.includes(fragment),
        `"${fragment}" in ${JSON.stringify(result.message)}`,
      );
    }
    // Whatever fits after evictions frees at least the shortfall.
    if (c.fits && c.evict.length > 0) {
      const freed = result.wouldEvict.reduce((sum, e) => sum + e.bytes, 0);
      assert.ok(freed >= result.neededBytes - result.availableBytes);
    }
  });
}

Deno.test("canFitChain - evictions carry their size and idle time", () => {
  const result = canFitChain(
    [model("m", 2 * GiB)],
    gpu({
      deviceFreeBytes: H,
      pipelines: [onGpu("a", 3 * GiB, { lastUsedAt: NOW - 42_000 })],
    }),
  );
  assert.deepEqual(result.wouldEvict, [{ id: "a", bytes: 3 * GiB, idleMs: 42_000 }]);
});

Deno.test("canFitChain - changes nothing in the state it reads", () => {
  const state = gpu({ deviceFreeBytes: H, pipelines: [onGpu("a", 3 * GiB)] });
  const before = structuredClone(state);
  canFitChain([model("m", 2 * GiB)], state);
  assert.deepEqual(state, before);
});

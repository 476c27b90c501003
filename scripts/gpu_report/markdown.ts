/**
 * Turns the GPU report's JSON into docs/gpu.md: a heading that says plainly whether the
 * figures come from a card or from the driver double and the software adapter, the
 * steps' outcomes, each step's figures, and the one command that reruns it on a card.
 * @module
 */
import type { StepRecord } from "./steps.ts";

/** Everything the report measured (written as gpu.json). */
export interface GpuReport {
  startedAt: string;
  totalMs: number;
  /** True only on a real NVIDIA card: NVML is the driver's and the adapter is hardware. */
  card: boolean;
  /** NVML and the CUDA runtime were tests/fake_gpu.c. */
  onDouble: boolean;
  /** The WebGPU adapter was a software one (llvmpipe, lavapipe). */
  software: boolean;
  sizes: string[];
  steps: StepRecord[];
}

/** The exact call the next session with an NVIDIA device machine makes (see docs/gpu.md). */
export const DEVICE_COMMAND =
  "for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; sh .dist/device/run.sh --out $OUT 2>&1 | tee $OUT/log";

function bytes(n: unknown): string {
  if (typeof n !== "number") return String(n);
  if (Math.abs(n) >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (Math.abs(n) >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${n} B`;
}

function value(key: string, v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number" && /Bytes$/.test(key)) return bytes(v);
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return v.replaceAll("|", "\\|").replaceAll("\n", "; ");
  return "`" + JSON.stringify(v).replaceAll("|", "\\|") + "`";
}

function heading(report: GpuReport): string {
  if (report.card) return "# Headroom on an NVIDIA card";
  const parts = [
    report.onDouble ? "the driver double (tests/fake_gpu.c)" : null,
    report.software ? "the software WebGPU adapter" : null,
  ].filter(Boolean).join(" and ");
  return `# Rehearsal on ${parts || "a machine without an NVIDIA driver"}, not a card`;
}

/** Renders the report as Markdown. */
export function renderMarkdown(report: GpuReport): string {
  const lines = [heading(report), ""];
  if (!report.card) {
    lines.push(
      "These figures are NOT from a GPU: they prove the report runs end to end (bundle, no " +
        "registry, every step) on a machine without one. Run it on a card (below) for real figures.",
      "",
    );
  }
  lines.push(
    `Written by \`deno task gpu-report\` (scripts/gpu_report.ts) on ${report.startedAt}, ` +
      `in ${(report.totalMs / 1000).toFixed(0)} s; every figure is also in gpu.json beside ` +
      "this file. Generated models: " + (report.sizes.join(", ") || "none") + ".",
    "",
    "| step | outcome | time | limit | note |",
    "| --- | --- | --- | --- | --- |",
  );
  for (const s of report.steps) {
    lines.push(
      `| ${s.name} | ${s.status} | ${(s.ms / 1000).toFixed(1)} s | ${
        (s.limitMs / 1000).toFixed(0)
      } s | ${value("", s.reason ?? "")} |`,
    );
  }
  for (const s of report.steps) {
    const entries = Object.entries(s.figures);
    if (entries.length === 0) continue;
    lines.push("", `## ${s.name}`, "", "| figure | value |", "| --- | --- |");
    for (const [key, v] of entries) {
      if (v && typeof v === "object" && !Array.isArray(v)) {
        for (const [inner, w] of Object.entries(v)) {
          lines.push(`| ${key}.${inner} | ${value(inner, w)} |`);
        }
      } else lines.push(`| ${key} | ${value(key, v)} |`);
    }
  }
  lines.push(
    "",
    "## Running it on a card",
    "",
    "Here: `deno task device-bundle` (writes `.dist/device/`, at most 60 MiB), and once, the " +
      "Vulkan loader for the device machine: `echo /.gl/ >>.git/info/exclude; mkdir -p .gl " +
      "/tmp/amd64/partial; o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 " +
      "-oDir::State::Lists=/tmp/amd64'; apt-get $o update; (cd .gl && apt-get $o download " +
      "libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)`.",
    "",
    'Then one device `run` with `carry: [".dist/device", ".gl"]` and `timeout_s: 600`:',
    "",
    "```sh",
    DEVICE_COMMAND,
    "```",
    "",
    "`run.sh` sets `VK_DRIVER_FILES` and `__EGL_VENDOR_LIBRARY_FILENAMES` to NVIDIA's files " +
      "under /usr/local/nvidia when they are there; gpu.md and gpu.json come back in $OUT. " +
      "The report's own budget is 480 s (`--budget`).",
    "",
  );
  return lines.join("\n");
}

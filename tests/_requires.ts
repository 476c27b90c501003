/**
 * What a test needs from the machine (a WebGPU adapter, chromium, the built driver
 * double), decided once, up front, for `Deno.test`'s `ignore`: here a missing need skips
 * the test with the reason printed; with `CI` set (`.ci/run` sets it) it throws, naming
 * what is missing and how to install it, so CI never passes on a test that did not run.
 *
 * @example
 * ```ts ignore
 * const webgpu = await requireWebGpu();
 * Deno.test({ name: "load on the GPU", ignore: !webgpu, fn: async () => {} });
 * ```
 * @module
 */
import { CHROMIUM_PATH } from "../scripts/_lib/chromium.ts";
import { findAdapter } from "../core/monitor/webgpu_source.ts";
import { FAKE_GPU_PATH } from "./fake_gpu.ts";

/** True when the run is a CI run (`CI` set to anything but "" / "0" / "false"). */
export function isCi(): boolean {
  const value = Deno.env.get("CI") ?? "";
  return value !== "" && value !== "0" && value.toLowerCase() !== "false";
}

/** Thrown under CI when a test's need is missing. */
export class MissingRequirement extends Error {
  override name = "MissingRequirement";
}

const warned = new Set<string>();

/**
 * True when `present`; otherwise false with the reason printed once (a skip), or, under
 * CI, a {@link MissingRequirement} naming `what` and `install`.
 */
export function need(present: boolean, what: string, install: string): boolean {
  if (present) return true;
  const message = `Missing ${what}: ${install}`;
  if (isCi()) throw new MissingRequirement(`${message} (CI is set: a missing need fails the run)`);
  if (!warned.has(message)) {
    warned.add(message);
    console.warn(`${message}. The tests that need it are skipped here.`);
  }
  return false;
}

/** How to get a WebGPU adapter on a machine without a GPU. */
export const WEBGPU_INSTALL =
  "apt-get install -y mesa-vulkan-drivers (the lavapipe software adapter) or run on a GPU";

let adapter: Promise<boolean> | undefined;

/**
 * A WebGPU adapter in this process (the software one, lavapipe, is fine); asked once.
 * Workers see the same adapters as the test process.
 */
export function requireWebGpu(): Promise<boolean> {
  adapter ??= findAdapter().then((found) => found !== null, () => false);
  return adapter.then((present) =>
    need(
      present,
      "a WebGPU adapter (navigator.gpu.requestAdapter() returned none)",
      WEBGPU_INSTALL,
    )
  );
}

/** Debian's chromium for the browser tests (CHROMIUM_PATH overrides where it is). */
export function requireChromium(): boolean {
  return need(
    exists(CHROMIUM_PATH),
    `chromium at ${CHROMIUM_PATH}`,
    "apt-get install -y chromium (or set CHROMIUM_PATH)",
  );
}

/** The driver test double built from tests/fake_gpu.c. */
export function requireFakeGpu(): boolean {
  return need(
    exists(FAKE_GPU_PATH),
    `the driver test double ${FAKE_GPU_PATH}`,
    "deno task build:fake-gpu (needs a C compiler: apt-get install -y gcc libc6-dev)",
  );
}

/** Whether something is at `path` (a file, a folder, a link's target). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

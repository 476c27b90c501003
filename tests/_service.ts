/**
 * Test helpers: a Headroom service on the driver test double (a private copy per
 * test, since `deno test --parallel` shares one process), cleaned up with `await using`.
 */
import type { Config } from "../core/config.ts";
import {
  type Headroom,
  headroomConfig,
  type HeadroomOptions,
  serveHeadroom,
  startHeadroom,
} from "../server/serve_headroom.ts";
import type { Service } from "../server/service.ts";
import { FakeGpu } from "./fake_gpu.ts";
import { tempDirSync } from "./_temp.ts";

/** A config with test defaults: port 0, a temp data dir, the given overrides. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return headroomConfig({
    config: { dataDir: tempDirSync("headroom-test-"), ...overrides },
  }).config;
}

/** A service reading a private fake GPU; both are closed on dispose. */
export interface FakeGpuService extends AsyncDisposable {
  gpu: FakeGpu;
  service: Service;
  /** `app.request` shorthand. */
  request(path: string, init?: RequestInit): Promise<Response>;
}

/**
 * Starts a service on a fresh private fake GPU (one 8 GiB device unless `setup` changes
 * it), in a temp data dir removed on dispose unless `overrides` names one.
 */
export function startOnFakeGpu(
  overrides: Partial<Config> = {},
  setup: (gpu: FakeGpu) => void = () => {},
): Promise<FakeGpuService> {
  return onFakeGpu(overrides, setup, (options) => startHeadroom(options));
}

/** {@link startOnFakeGpu}, also listening on a free loopback port, for clients that need a socket. */
export function serveOnFakeGpu(
  overrides: Partial<Config> = {},
  setup: (gpu: FakeGpu) => void = () => {},
): Promise<FakeGpuService & { url: string }> {
  return onFakeGpu(overrides, setup, (options) => serveHeadroom(options));
}

async function onFakeGpu<H extends Headroom>(
  overrides: Partial<Config>,
  setup: (gpu: FakeGpu) => void,
  start: (options: HeadroomOptions) => Promise<H>,
): Promise<FakeGpuService & Omit<H, keyof Headroom>> {
  const gpu = new FakeGpu({ isolate: true });
  setup(gpu);
  let headroom: H;
  try {
    headroom = await start({
      config: { nvmlLibrary: gpu.path, ...overrides },
      tempPrefix: "headroom-test-",
    });
  } catch (error) {
    gpu.close();
    throw error;
  }
  const { service, request, close, ...rest } = headroom;
  return {
    ...(rest as Omit<H, keyof Headroom>),
    gpu,
    service,
    request,
    async [Symbol.asyncDispose]() {
      await close();
      gpu.close();
    },
  };
}

/** Reads Server-Sent Events from a response body, one parsed event at a time. */
export async function* readSse(
  response: Response,
): AsyncGenerator<{ event: string; data: string }> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        yield { event, data: data.join("\n") };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

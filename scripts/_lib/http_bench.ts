/** HTTP load for the benchmarks: servers in subprocesses, and wrk against them. */
import { fileURLToPath as fromFileUrl } from "node:url";
import { SERVICE_V8_FLAGS, startServerProcess } from "./server_process.ts";

/** What wrk measured. */
export interface HttpResult {
  requestsPerSecond: number;
  /** Requests wrk completed in the round. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** How wrk loads the target (default: 2 threads, 50 connections, GET). */
export interface WrkOptions {
  connections?: number;
  threads?: number;
  /** Seconds before wrk counts a request as timed out (wrk's default: 2). */
  timeoutSeconds?: number;
  /** A Lua script (like bench/wrk_post.lua), and the environment it reads. */
  script?: string;
  env?: Record<string, string>;
}

/** A latency line of wrk's `--latency` table (`99%  12.3ms`) in ms. */
function percentileMs(text: string, percent: string): number {
  const match = new RegExp(`\\s${percent}%\\s+([\\d.]+)(us|ms|s)\\b`).exec(text);
  return match ? Number(match[1]) * ({ us: 0.001, ms: 1, s: 1000 }[match[2]] ?? 1) : NaN;
}

/** A server started for a benchmark. */
export interface BenchServer {
  url: string;
  stop(): Promise<void>;
}

/** Runs wrk for `seconds` (2 threads, 50 connections unless `options` say) and parses its summary. */
export async function runWrk(
  url: string,
  seconds: number,
  options: WrkOptions = {},
): Promise<HttpResult> {
  const connections = options.connections ?? 50;
  const threads = Math.min(options.threads ?? 2, connections);
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("wrk", {
      args: [
        `-t${threads}`,
        `-c${connections}`,
        `-d${seconds}s`,
        "--latency",
        ...(options.timeoutSeconds ? ["--timeout", `${options.timeoutSeconds}s`] : []),
        ...(options.script ? ["-s", options.script] : []),
        url,
      ],
      env: options.env,
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error("wrk is not installed: run `apt-get install -y wrk` and try again");
    }
    throw error;
  }
  const text = new TextDecoder().decode(output.stdout);
  const rps = /Requests\/sec:\s*([\d.]+)/.exec(text);
  if (!output.success || !rps) {
    throw new Error(`wrk failed:\n${text}\n${new TextDecoder().decode(output.stderr)}`);
  }
  const completed = /(\d+) requests in /.exec(text);
  const errors = /Non-2xx or 3xx responses:\s*(\d+)/.exec(text);
  const socketErrors = /Socket errors:.*\btimeout (\d+)/.exec(text);
  return {
    requestsPerSecond: Number(rps[1]),
    requests: completed ? Number(completed[1]) : NaN,
    p50Ms: percentileMs(text, "50"),
    p99Ms: percentileMs(text, "99"),
    errors: (errors ? Number(errors[1]) : 0) + (socketErrors ? Number(socketErrors[1]) : 0),
  };
}

/** A plain `Deno.serve` hello world: the ceiling to compare against. */
export function startHelloWorld(): Promise<BenchServer> {
  const code = `Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) =>
    console.log("http://127.0.0.1:" + port) }, () => new Response("Hello, world"));`;
  return startServerProcess({ args: ["eval", code], stopSignal: "SIGKILL" });
}

/**
 * Headroom itself (main.ts) in its own process, on the NVML test double
 * (tests/.build/libfakegpu.so): wrk measures the server alone, not this process.
 */
export async function startHeadroomProcess(root: string): Promise<BenchServer> {
  const main = fromFileUrl(new URL("../../main.ts", import.meta.url));
  const dataDir = await Deno.makeTempDir({ prefix: "headroom-bench-" });
  const removeData = () => Deno.remove(dataDir, { recursive: true }).catch(() => {});
  const server = await startServerProcess({
    args: ["run", SERVICE_V8_FLAGS, "--allow-all", main, "--port", "0"],
    env: {
      HEADROOM_NVML_LIBRARY: `${root}tests/.build/libfakegpu.so`,
      HEADROOM_DATA_DIR: dataDir,
    },
    stopSignal: "SIGKILL",
  }).catch(async (error) => {
    await removeData();
    throw error;
  });
  return {
    url: server.url,
    stop: async () => {
      await server.stop();
      await removeData(); // the data dir goes with the server
    },
  };
}

/**
 * The entry of a plugin process: the one place a plugin's code runs. The host starts it
 * with the deno binary and no permissions beyond reading the plugin's own file and its
 * declared assets (no env, FFI, net, run, write or sys; no remote or uncached npm
 * imports; a capped heap). Its main module is a `data:` URL that imports the plugin and
 * this module statically (static imports need no read permission) and calls
 * {@link servePlugin}, which answers the host's frames on stdin with frames on stdout;
 * the plugin's console output goes to stderr so it cannot break the channel.
 * @module
 */
import type { PipelinePlugin } from "./plugin.ts";
import type { WireTensor } from "../core/pipelines/protocol.ts";
import type { FromPlugin, ToPlugin } from "./plugin_messages.ts";
import { encodeFrame, readFrames } from "./plugin_wire.ts";

const writer = Deno.stdout.writable.getWriter();
let writing: Promise<void> = Promise.resolve();
function send(message: FromPlugin): Promise<void> {
  const frame = encodeFrame(message);
  writing = writing.then(async () => {
    for (const part of frame) await writer.write(part);
  });
  return writing;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const pending = new Map<number, (reply: Extract<ToPlugin, { type: "inferred" }>) => void>();
let nextCall = 1;

function infer(feeds: Record<string, WireTensor>): Promise<Record<string, WireTensor>> {
  const call = nextCall++;
  return new Promise((resolve, reject) => {
    pending.set(
      call,
      (reply) => reply.ok ? resolve(reply.outputs) : reject(new Error(reply.message)),
    );
    send({ type: "infer", call, feeds }).catch(reject);
  });
}

let loaded: PipelinePlugin | undefined;

async function processOne(req: Extract<ToPlugin, { type: "process" }>): Promise<void> {
  try {
    const input = req.probe ? loaded!.probe?.() : req.input;
    if (req.probe && input === undefined) throw new Error("The plugin has no probe()");
    const output = await loaded!.process(input, infer);
    await send({ type: "done", id: req.id, ok: true, output });
  } catch (error) {
    // By name: a plugin that imported plugin.ts by another URL has its own class.
    const inputError = (error as Error)?.name === "PluginInputError";
    await send({ type: "done", id: req.id, ok: false, inputError, message: describe(error) });
  }
}

async function init(req: Extract<ToPlugin, { type: "init" }>): Promise<void> {
  if (!loaded || typeof loaded.process !== "function") {
    return send({
      type: "ready",
      ok: false,
      message: "the module has no default export with a process() method",
    });
  }
  try {
    await loaded.init?.({ modelId: req.modelId, assets: req.assets });
  } catch (error) {
    return send({ type: "ready", ok: false, message: `its init failed: ${describe(error)}` });
  }
  await send({ type: "ready", ok: true, probe: typeof loaded.probe === "function" });
}

/** Serves `plugin` (the plugin module's default export) to the host until stdin closes. */
export async function servePlugin(plugin: unknown): Promise<void> {
  loaded = plugin as PipelinePlugin | undefined;
  for (const name of ["log", "info", "debug", "warn", "table", "dir"] as const) {
    console[name] = (...args: unknown[]) => console.error(...args);
  }
  for await (const message of readFrames(Deno.stdin.readable)) {
    const req = message as ToPlugin;
    if (req.type === "init") await init(req);
    else if (req.type === "process") processOne(req);
    else if (req.type === "inferred") {
      const settle = pending.get(req.call);
      pending.delete(req.call);
      settle?.(req);
    }
  }
  // The host closed stdin: it is done with this plugin.
  Deno.exit(0);
}

import { ensureSyntheticModel } from "/work/wt/i19-path/core/models/synthetic.ts";
import { startHeadroom } from "/work/wt/i19-path/server/serve_headroom.ts";
const which = Deno.args[0] ?? "v2json";
const info = await ensureSyntheticModel(`/work/wt/i19-path/data/bench`, "1MiB", { width: 512 });
const width = 512;
const values1 = Array.from({ length: width }, (_, i) => Math.fround(Math.sin(i) / 2));
const v2 = JSON.stringify({ inputs: [{ name: "input", shape: [1, width], datatype: "FP32", data: values1 }] });
const v1 = JSON.stringify({ inputs: { input: { type: "float32", dims: [1, width], data: values1 } } });
const h = await startHeadroom({ args: ["--gpu", "cpu", "--cpu-engine", "native", "--cpu-threads", "2"], models: [{ id: "m", source: info.path }] });
const req = () => which === "v1"
  ? h.request("/api/v1/pipelines/m/infer", { method: "POST", headers: { "content-type": "application/json" }, body: v1 })
  : h.request("/v2/models/m/infer", { method: "POST", headers: { "content-type": "application/json" }, body: v2 });
for (let i = 0; i < 200; i++) await (await req()).arrayBuffer();
const t0 = performance.now();
const n = Number(Deno.args[1] ?? 3000);
for (let i = 0; i < n; i++) { const r = await req(); if (r.status !== 200) throw new Error(await r.text()); await r.arrayBuffer(); }
console.error(`${which}: ${((performance.now() - t0) * 1000 / n).toFixed(0)} µs/request`);
await h.close();

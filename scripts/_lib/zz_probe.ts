import { parseConfig } from "../../core/config.ts";
import { startService } from "../../core/service.ts";
const dir = Deno.makeTempDirSync();
const ids = ["a", "b", "c", "d"];
Deno.writeTextFileSync(dir + "/m.json", JSON.stringify({ models: ids.map((id, i) => ({ id, source: `synthetic:${64 * (i + 1)}KiB` })) }));
const p = parseConfig(["--port=0", `--data-dir=${dir}`, `--models=${dir}/m.json`, `--gpu=${Deno.args[0]}`, "--vram-budget=1MiB", "--sample-ms=100"], new Map());
if (p.help) throw 1;
const s = await startService(p.config);
const post = (path: string, body: unknown) => s.app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const widths: Record<string, number> = {};
for (const id of ids) widths[id] = (await (await post(`/api/v1/models/${id}/load`, { device: "cpu" })).json()).inputs[0].dims[1];
const infer = async (id: string) => {
  const t = performance.now();
  const r = await post(`/api/v1/pipelines/${id}/infer`, { inputs: { input: { type: "float32", dims: [1, widths[id]], data: new Array(widths[id]).fill(0.1) } } });
  const b = await r.json();
  return `infer ${id} ${r.status} ${b.device} ${Math.round(performance.now() - t)}ms`;
};
const sw = async (id: string) => {
  const t = performance.now();
  const r = await post(`/v1/models/switch`, { model: id });
  return `switch ${id} ${r.status} ${Math.round(performance.now() - t)}ms`;
};
for (let round = 0; round < 3; round++) {
  const t = performance.now();
  const res = await Promise.all([infer("a"), infer("b"), sw("c"), infer("d"), infer("a")]);
  console.log(round, Math.round(performance.now() - t), res.join(" | "));
}
console.log(s.services.manager.placements().map((x) => `${x.id}:${x.state}`).join(" "));
await s.close();
Deno.exit(0);

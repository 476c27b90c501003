/**
 * `deno task figures`: writes the Reliability table in docs/reliability.md from the
 * figures the tests left in tests/artifacts/ (run `deno task test` first). Exits 1, naming
 * the missing artifacts, rather than write a table with holes.
 *
 * Usage: deno task figures [--out PATH] [--artifacts DIR]
 * @module
 */
import { parseArgs } from "node:util";
import { readArtifacts, renderReliability } from "./_lib/reliability_table.ts";
import { writeSection } from "./_lib/generated_section.ts";

const root = new URL("../", import.meta.url);
const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: new URL("docs/reliability.md", root).pathname },
    artifacts: { type: "string", default: new URL("tests/artifacts/", root).pathname },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("Usage: deno task figures [--out PATH] [--artifacts DIR]");
  Deno.exit(0);
}
try {
  const lines = renderReliability(await readArtifacts(values.artifacts));
  await writeSection(values.out, "reliability", lines);
  console.log(`wrote the Reliability table in ${values.out}`);
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}

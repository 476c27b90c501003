/**
 * `deno task figures`: writes the README's Reliability table from the figures the tests
 * left in tests/artifacts/ (run `deno task test` first). Exits 1, naming the missing
 * artifacts, rather than write a table with holes.
 *
 * Usage: deno task figures [--readme PATH] [--artifacts DIR]
 * @module
 */
import { parseArgs } from "node:util";
import { readArtifacts, renderReliability } from "./_lib/reliability_table.ts";
import { writeReadmeSection } from "./_lib/readme_section.ts";

const root = new URL("../", import.meta.url);
const { values } = parseArgs({
  args: Deno.args,
  options: {
    readme: { type: "string", default: new URL("README.md", root).pathname },
    artifacts: { type: "string", default: new URL("tests/artifacts/", root).pathname },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("Usage: deno task figures [--readme PATH] [--artifacts DIR]");
  Deno.exit(0);
}
try {
  const lines = renderReliability(await readArtifacts(values.artifacts));
  await writeReadmeSection(values.readme, "reliability", lines);
  console.log(`wrote the Reliability table in ${values.readme}`);
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}

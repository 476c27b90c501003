/**
 * `deno task figures`: writes the Reliability table in docs/reliability.md from the
 * figures the tests left in tests/artifacts/ (run `deno task test` first). Exits 1, naming
 * the missing artifacts, rather than write a table with holes.
 * @module
 */
import { defineTool, flag } from "./_lib/tool.ts";
import { readArtifacts, renderReliability } from "./_lib/reliability_table.ts";
import { writeSection } from "./_lib/generated_section.ts";

const root = new URL("../", import.meta.url);

const tool = defineTool({
  name: "figures",
  usage: "deno task figures [--out PATH] [--artifacts DIR]",
  about: "Writes the Reliability table (between the reliability markers of docs/reliability.md)\n" +
    "from the figures the tests left in tests/artifacts/; run `deno task test` first.",
  flags: {
    out: {
      arg: "PATH",
      help: "the file to update (default docs/reliability.md)",
      schema: flag.text(),
    },
    artifacts: {
      arg: "DIR",
      help: "where the tests left their figures (default tests/artifacts/)",
      schema: flag.text(),
    },
  },
  notes: "Exit status: 0 written; 1 an artifact is missing (named) or the file has no\n" +
    "reliability markers; 2 a bad flag.",
});

const { values } = tool.parse(Deno.args);
const out = values.out ?? new URL("docs/reliability.md", root).pathname;
const artifacts = values.artifacts ?? new URL("tests/artifacts/", root).pathname;
try {
  const lines = renderReliability(await readArtifacts(artifacts));
  await writeSection(out, "reliability", lines);
  console.log(`wrote the Reliability table in ${out}`);
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}

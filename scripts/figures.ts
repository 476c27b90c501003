/**
 * `deno task figures`: writes the README's Reliability table from the figures the tests
 * left in tests/artifacts/ (run `deno task test` first). Exits 1, naming the missing
 * artifacts, rather than write a table with holes.
 * @module
 */
import { defineTool, flag } from "./_lib/tool.ts";
import { readArtifacts, renderReliability } from "./_lib/reliability_table.ts";
import { writeReadmeSection } from "./_lib/readme_section.ts";

const root = new URL("../", import.meta.url);

const tool = defineTool({
  name: "figures",
  usage: "deno task figures [--readme PATH] [--artifacts DIR]",
  about: "Writes the README's Reliability table (between its reliability markers) from the\n" +
    "figures the tests left in tests/artifacts/; run `deno task test` first.",
  flags: {
    readme: { arg: "PATH", help: "the README to update (default README.md)", schema: flag.text() },
    artifacts: {
      arg: "DIR",
      help: "where the tests left their figures (default tests/artifacts/)",
      schema: flag.text(),
    },
  },
  notes: "Exit status: 0 written; 1 an artifact is missing (named) or the README has no\n" +
    "reliability markers; 2 a bad flag.",
});

const { values } = tool.parse(Deno.args);
const readme = values.readme ?? new URL("README.md", root).pathname;
const artifacts = values.artifacts ?? new URL("tests/artifacts/", root).pathname;
try {
  const lines = renderReliability(await readArtifacts(artifacts));
  await writeReadmeSection(readme, "reliability", lines);
  console.log(`wrote the Reliability table in ${readme}`);
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}

/** Rewrites the benchmark table in the README between its markers. */

const START = "<!-- bench:start -->";
const END = "<!-- bench:end -->";

/** The results file's shape, as far as the table needs it. */
export interface BenchResults {
  ranAt: string;
  machine: string;
  rows: Array<{ name: string; value: number; unit: string; target?: string; note: string }>;
}

/** Replaces the text between the markers with a table of `results` (the markers must exist). */
export async function writeReadmeTable(readmePath: string, results: BenchResults): Promise<void> {
  const readme = await Deno.readTextFile(readmePath);
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) {
    throw new Error(
      `${readmePath} has no ${START} … ${END} markers: add them where the table goes`,
    );
  }
  const lines = [
    START,
    `Last run ${results.ranAt.slice(0, 16).replace("T", " ")} UTC on ${results.machine}.`,
    "",
    "| benchmark | result | target | how |",
    "| --- | --- | --- | --- |",
    ...results.rows.map((row) =>
      `| ${row.name} | ${format(row.value)} ${row.unit} | ${row.target ?? ""} | ${row.note} |`
    ),
    END,
  ];
  await Deno.writeTextFile(
    readmePath,
    readme.slice(0, start) + lines.join("\n") + readme.slice(end + END.length),
  );
  // Keep `deno fmt --check` (part of the test task) green: format the table as fmt would.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", readmePath] }).output();
}

function format(value: number): string {
  if (value >= 1000) return Math.round(value).toLocaleString("en-US");
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

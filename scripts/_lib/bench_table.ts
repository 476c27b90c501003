/** Rewrites the benchmark table in docs/benchmarks.md between its `bench` markers. */

import { writeSection } from "./generated_section.ts";

/** The results file's shape, as far as the table needs it. */
export interface BenchResults {
  ranAt: string;
  machine: string;
  rows: Array<{ name: string; value: number; unit: string; target?: string; note: string }>;
}

/** Replaces the text between the markers in `path` with a table of `results` (the markers must exist). */
export async function writeBenchTable(path: string, results: BenchResults): Promise<void> {
  await writeSection(path, "bench", [
    `Last run ${results.ranAt.slice(0, 16).replace("T", " ")} UTC on ${results.machine}.`,
    "",
    "| benchmark | result | target | how |",
    "| --- | --- | --- | --- |",
    ...results.rows.map((row) =>
      `| ${row.name} | ${format(row.value)} ${row.unit} | ${row.target ?? ""} | ${row.note} |`
    ),
  ]);
}

function format(value: number): string {
  if (value >= 1000) return Math.round(value).toLocaleString("en-US");
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

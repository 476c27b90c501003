/**
 * Generated sections of the Markdown docs: the lines between `<!-- name:begin -->` and
 * `<!-- name:end -->`, written by a task (the README's configuration table, the benchmark
 * and reliability tables in docs/) and never edited by hand.
 * @module
 */

/** The two markers around the section `name`. */
export function sectionMarkers(name: string): { begin: string; end: string } {
  return { begin: `<!-- ${name}:begin -->`, end: `<!-- ${name}:end -->` };
}

/**
 * The lines between the markers of `name` in `text` (markers excluded). Throws, naming
 * the file and the markers, when they are missing.
 */
export function readSection(text: string, name: string, path: string): string[] {
  const { begin, end } = sectionMarkers(name);
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from < 0 || to < from) {
    throw new Error(`${path} has no ${begin} … ${end} markers: add them where it goes`);
  }
  return text.slice(from + begin.length, to).split("\n").slice(1, -1);
}

/** The repository's deno.json: its `fmt` options apply to a file written anywhere. */
const DENO_JSON = new URL("../../deno.json", import.meta.url).pathname;

/**
 * Rewrites the text between the markers of `name` in the file at `path` with `lines`
 * (the markers stay), then formats the file with the repository's `deno fmt` options, so
 * the check task's `fmt --check` stays green. Throws when a marker is missing.
 */
export async function writeSection(path: string, name: string, lines: string[]): Promise<void> {
  const text = await Deno.readTextFile(path);
  readSection(text, name, path); // throws without the markers
  const { begin, end } = sectionMarkers(name);
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  await Deno.writeTextFile(
    path,
    text.slice(0, from) + [begin, ...lines, end].join("\n") + text.slice(to + end.length),
  );
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", "--config", DENO_JSON, path] })
    .output();
}

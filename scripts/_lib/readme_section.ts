/** Replaces a generated section of the README: the lines between two HTML-comment markers. */

/**
 * Rewrites the text between `<!-- name:start -->` and `<!-- name:end -->` in `readmePath`
 * with `lines` (the markers stay), then formats the file as `deno fmt` would, so the
 * test task's `fmt --check` stays green. Throws when a marker is missing.
 */
export async function writeReadmeSection(
  readmePath: string,
  name: string,
  lines: string[],
): Promise<void> {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const readme = await Deno.readTextFile(readmePath);
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) {
    throw new Error(`${readmePath} has no ${start} … ${end} markers: add them where it goes`);
  }
  await Deno.writeTextFile(
    readmePath,
    readme.slice(0, from) + [start, ...lines, end].join("\n") + readme.slice(to + end.length),
  );
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", readmePath] }).output();
}

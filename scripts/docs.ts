/**
 * `deno task docs`: writes the README's configuration table, between its
 * `<!-- settings:begin -->` and `<!-- settings:end -->` markers, from the one settings
 * table (`SETTINGS` in core/config.ts). `--check` writes nothing and exits 1 when the
 * committed table is stale (`deno task check` runs it, as it runs `manifest.ts --check`).
 *
 * Usage: deno task docs [--check] [--readme PATH]
 * @module
 */
import { flagUsage, settingEntries } from "../core/config.ts";
import { readSection, writeSection } from "./_lib/generated_section.ts";
import { defineTool, flag } from "./_lib/tool.ts";

/** The name of the README's generated configuration section. */
export const SETTINGS_SECTION = "settings";

/** `|` would end a table cell: Markdown wants it escaped, code spans included. */
const cell = (text: string): string => text.replaceAll("|", "\\|");

/** The configuration table's lines, one row per setting in declaration order. */
export function renderSettingsTable(): string[] {
  return [
    "| variable | flag | default | what |",
    "| --- | --- | --- | --- |",
    ...settingEntries().map(([, setting]) => {
      // A default given as text is a value one could type; an unset one is described.
      const typed = setting.default !== null && setting.default !== "";
      const shown = typed ? `\`${setting.shownDefault}\`` : setting.shownDefault;
      return `| ${
        [`\`${setting.env}\``, `\`${flagUsage(setting)}\``, shown, setting.help].map(cell).join(
          " | ",
        )
      } |`;
    }),
  ];
}

/**
 * The cells of a Markdown table's rows (the delimiter row and any other line left out),
 * trimmed, so a table `deno fmt` padded compares equal to the one rendered.
 */
export function tableCells(lines: readonly string[]): string[][] {
  return lines
    .map((line) => line.trim())
    .filter((line) => line.startsWith("|") && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line.slice(1, -1).split(/(?<!\\)\|/).map((text) => text.trim().replace(/\s+/g, " "))
    );
}

/** Whether the configuration table in this README text says what `SETTINGS` says. */
export function settingsTableIsCurrent(readme: string, path = "README.md"): boolean {
  const committed = tableCells(readSection(readme, SETTINGS_SECTION, path));
  return JSON.stringify(committed) === JSON.stringify(tableCells(renderSettingsTable()));
}

if (import.meta.main) {
  const tool = defineTool({
    name: "docs",
    usage: "deno task docs [--check] [--readme PATH]",
    about: "Writes the README's configuration table (between its settings markers) from\n" +
      "SETTINGS in core/config.ts; with --check, writes nothing and says whether it is current.",
    flags: {
      check: { help: "write nothing; exit 1 when the committed table is stale" },
      readme: {
        arg: "PATH",
        help: "the README to read and update (default README.md)",
        schema: flag.custom((text) => text ?? new URL("../README.md", import.meta.url).pathname),
      },
    },
    notes: "Exit status: 0 written (or current with --check); 1 the table is stale, or the\n" +
      "file is unreadable or has no settings markers; 2 a bad flag.",
  });
  const { values } = tool.parse(Deno.args);
  try {
    const readme = await Deno.readTextFile(values.readme);
    if (values.check) {
      if (!settingsTableIsCurrent(readme, values.readme)) {
        console.error(
          `Stale: the configuration table in ${values.readme} differs from SETTINGS in ` +
            "core/config.ts. Run `deno task docs` and commit the result.",
        );
        Deno.exit(1);
      }
      console.log("The configuration table is up to date.");
    } else {
      await writeSection(values.readme, SETTINGS_SECTION, renderSettingsTable());
      console.log(`wrote the configuration table in ${values.readme}`);
    }
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}

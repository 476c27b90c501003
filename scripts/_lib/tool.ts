/**
 * The scaffold every terminal tool (`deno task stress`, `pressure`, `load`, `bench`,
 * `figures`, `gen-model`, `build`, `manifest`, `build:fake-gpu`, `docs`, `device-bundle`,
 * `gpu-report`) stands on: its flags
 * declared once — how the command line reads each, the line
 * `--help` shows for it, and the zod schema that turns its text into a typed value —
 * so the help text and the parser cannot drift apart; every bad flag reported at once,
 * each naming the flag, exit 2; the progress bar; and the final result, printed as a
 * summary or as JSON and, where the tool keeps one, written to its results file.
 *
 * @example
 * ```ts ignore
 * const tool = defineTool({
 *   name: "demo",
 *   usage: "deno task demo [--count N] [--json]",
 *   about: "Counts.",
 *   flags: {
 *     count: { arg: "N", help: "how many (default 3)", schema: flag.number(3, { min: 1 }) },
 *     json: { help: "print the result as JSON" },
 *   },
 * });
 * const { values } = tool.parse(Deno.args);
 * tool.report({ count: values.count }, { json: values.json, text: (r) => `${r.count}` });
 * ```
 * @module
 */
import { z } from "zod";
import {
  EXIT_USAGE,
  numberFlag,
  type NumberRange,
  type Progress,
  startProgress,
  urlFlag,
  UsageError,
} from "./cli.ts";

/** How a flag's text (undefined when it was not given) becomes its value. */
export type FlagSchema<T> = z.ZodType<T, string | undefined>;

/** A flag that takes a value: `--name ARG`. */
export interface ValueFlag<T> {
  /** The value's placeholder in --help, e.g. `N`, `URL`. */
  arg: string;
  /** Its --help text; further lines are indented under the first. */
  help: string;
  schema: FlagSchema<T>;
}

/** A switch: `--name`, true when given. */
export interface SwitchFlag {
  /** Its --help text. */
  help: string;
}

/** A tool's flags by name (`--help` is added by the scaffold). */
// deno-lint-ignore no-explicit-any
export type FlagSpecs = Record<string, ValueFlag<any> | SwitchFlag>;

/** The parsed, typed values of `F`: a value flag's schema output, a switch's boolean. */
export type FlagValues<F extends FlagSpecs> = {
  [K in keyof F]: F[K] extends ValueFlag<infer T> ? T : boolean;
};

/** What a tool declares. */
export interface ToolDefinition<F extends FlagSpecs> {
  /** The task's name: `deno task <name>`; it also prefixes every error line. */
  name: string;
  /** The usage lines after `Usage: `. */
  usage: string;
  /** What the tool does, shown under the usage. */
  about: string;
  flags: F;
  /** Text after the flag list: output fields, exit status, examples. */
  notes?: string;
  /**
   * Pass unknown flags on (in `rest`) instead of refusing them: `deno task load`
   * hands them to the server's parser.
   */
  passThrough?: boolean;
  /** How a bad value is worded (default `--flag: problem`). */
  formatProblem?: (flag: string, text: string | undefined, problem: string) => string;
}

/** A declared tool: its help, its parser, and how it reports. */
export interface Tool<F extends FlagSpecs> {
  readonly name: string;
  /** The whole `--help` text. */
  readonly help: string;
  /**
   * Reads `args`: `--help` prints the help and exits 0; unknown flags, missing values
   * and bad values print one line each, naming the flag, and exit 2. `check` may
   * throw a {@link UsageError} for rules across flags (exit 2 the same way).
   */
  parse<R = FlagValues<F>>(
    args: string[],
    check?: (values: FlagValues<F>) => R,
  ): { values: R; rest: string[] };
  /** Prints `name: message` and the --help hint, exits 2. */
  fail(error: UsageError | string): never;
  /** A progress bar on stderr (silent off a terminal, or when `enabled` is false). */
  progress(
    title: string,
    total: number,
    options?: { enabled?: boolean; unit?: (value: number) => string },
  ): Progress;
  /** Prints the final result on stdout: JSON with `json`, else `text(result)`. */
  report<T>(result: T, options: { json: boolean; text: (result: T) => string }): void;
  /** Writes the result as JSON (two-space indent, final newline) to the tool's results file. */
  writeResults(path: string | URL, result: unknown): Promise<void>;
}

/** Declares a tool; see the module's example. */
export function defineTool<F extends FlagSpecs>(definition: ToolDefinition<F>): Tool<F> {
  const { name, flags } = definition;
  const help = helpText(definition);
  const format = definition.formatProblem ?? ((flag, _text, problem) => `${flag}: ${problem}`);
  const fail = (error: UsageError | string): never => {
    const message = typeof error === "string" ? error : error.message;
    const lines = message.split("\n").map((line) => `${name}: ${line}`).join("\n");
    console.error(`${lines}\nRun \`deno task ${name} --help\` for the flags.`);
    Deno.exit(EXIT_USAGE);
  };
  const schema = z.object(
    Object.fromEntries(
      Object.entries(flags).map((
        [key, spec],
      ) => [key, "schema" in spec ? spec.schema : z.boolean().default(false)]),
    ),
  );
  return {
    name,
    help,
    fail,
    parse<R>(args: string[], check?: (values: FlagValues<F>) => R) {
      const { raw, rest, problems } = readArgs(flags, args, definition.passThrough ?? false);
      if (raw.help === true) {
        console.log(help);
        Deno.exit(0);
      }
      delete raw.help;
      const parsed = schema.safeParse(raw);
      const lines = problems.map(({ flag, problem }) => format(flag, undefined, problem));
      const named = new Set(problems.map(({ flag }) => flag));
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          const key = String(issue.path[0]);
          if (named.has(`--${key}`)) continue; // its reading already failed: said once
          lines.push(format(`--${key}`, raw[key] as string | undefined, issue.message));
        }
      }
      if (lines.length > 0 || !parsed.success) return fail(lines.join("\n"));
      const values = parsed.data as FlagValues<F>;
      try {
        return { values: check ? check(values) : values as unknown as R, rest };
      } catch (error) {
        if (error instanceof UsageError) {
          return fail(format(error.flag, undefined, error.problem));
        }
        throw error;
      }
    },
    progress: (title, total, options) => startProgress(title, total, options),
    report(result, { json, text }) {
      console.log(json ? JSON.stringify(result, null, 2) : text(result));
    },
    async writeResults(path, result) {
      await Deno.writeTextFile(path, JSON.stringify(result, null, 2) + "\n");
    },
  };
}

/** One flag the command line got wrong, found while reading it. */
interface ArgProblem {
  flag: string;
  problem: string;
}

/** A value that reads as a number, negative ones included (`--gib -1` means the value -1). */
const NUMBER_TEXT = /^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Reads `args` against the declared flags (`--x v`, `--x=v`, a switch `--x`; `-h` is
 * `--help`), collecting every problem instead of stopping at the first: an unknown
 * flag, a missing value, a value given to a switch, a stray argument. With
 * `passThrough`, unknown arguments go to `rest` in order instead.
 */
function readArgs(flags: FlagSpecs, args: string[], passThrough: boolean) {
  const raw: Record<string, string | boolean | undefined> = {};
  const rest: string[] = [];
  const problems: ArgProblem[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] === "-h" ? "--help" : args[i];
    const match = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    const key = match?.[1];
    const spec = key === undefined ? undefined : key === "help" ? null : flags[key];
    if (!match || key === undefined || spec === undefined) {
      if (passThrough) rest.push(args[i]);
      else if (arg.startsWith("-")) {
        problems.push({ flag: arg.replace(/=.*$/s, ""), problem: "not a flag of this tool" });
      } else problems.push({ flag: JSON.stringify(arg), problem: "unexpected argument" });
      continue;
    }
    const inline = match[2];
    if (spec === null || !("schema" in spec)) {
      if (inline !== undefined) problems.push({ flag: `--${key}`, problem: "takes no value" });
      else raw[key] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = args[i + 1];
      if (next !== undefined && (!next.startsWith("-") || NUMBER_TEXT.test(next))) {
        value = next;
        i++;
      }
    }
    if (value === undefined) problems.push({ flag: `--${key}`, problem: "needs a value" });
    else raw[key] = value;
  }
  return { raw, rest, problems };
}

/** Usage, about, the flag list (aligned, `--help` last) and the notes. */
function helpText(definition: ToolDefinition<FlagSpecs>): string {
  const entries: Array<[string, string]> = Object.entries(definition.flags).map((
    [key, spec],
  ) => ["arg" in spec ? `--${key} ${spec.arg}` : `--${key}`, spec.help]);
  entries.push(["--help", "this text"]);
  const width = Math.max(...entries.map(([label]) => label.length)) + 2;
  const lines = entries.map(([label, text]) =>
    `  ${label.padEnd(width)}${text.split("\n").join(`\n  ${" ".repeat(width)}`)}`
  );
  return [
    `Usage: ${definition.usage}`,
    "",
    definition.about,
    "",
    ...lines,
    ...(definition.notes ? ["", definition.notes] : []),
  ].join("\n");
}

/**
 * Schema builders for flag values, on the readers in cli.ts, so a bad value is worded
 * the same in every tool (`"0" is out of range: expected from 1 to 1000`).
 */
export const flag = {
  /** Any reading: `read(text)` returns the value or throws a UsageError (its problem is shown). */
  custom<T>(read: (text: string | undefined) => T): FlagSchema<T> {
    return z.string().optional().transform((text, ctx) => {
      try {
        return read(text);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        ctx.addIssue({ code: "custom", message: error.problem });
        return z.NEVER;
      }
    });
  },
  /** A number within a range (`fallback` when not given). */
  number(fallback: number, range: NumberRange = {}): FlagSchema<number> {
    return flag.custom((text) => numberFlag("", text, fallback, range));
  },
  /** A number that must be given; `what` says what it is for. */
  requiredNumber(what: string, range: NumberRange = {}): FlagSchema<number> {
    return flag.custom((text) => {
      if (text === undefined) throw new UsageError("", `required: ${what}`);
      return numberFlag("", text, 0, range);
    });
  },
  /** Free text, undefined when not given. */
  text(): FlagSchema<string | undefined> {
    return flag.custom((text) => text);
  },
  /** An http(s) URL without a trailing slash, null when not given. */
  url(): FlagSchema<string | null> {
    return flag.custom((text) => urlFlag("", text));
  },
  /** One of `choices`; `fallback` when not given. */
  oneOf<const C extends string, D extends C | null>(
    choices: readonly C[],
    fallback: D,
  ): FlagSchema<C | D> {
    return flag.custom((text) => {
      if (text === undefined) return fallback;
      if (!(choices as readonly string[]).includes(text)) {
        const list = choices.length > 2
          ? `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`
          : choices.join(" or ");
        throw new UsageError("", `${JSON.stringify(text)}: expected ${list}`);
      }
      return text as C;
    });
  },
};

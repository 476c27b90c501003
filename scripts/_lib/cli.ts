/**
 * Shared pieces of the terminal tools (`deno task pressure`, `stress`, `load`, `bench`;
 * tool.ts builds the scaffold on them): the usage error and its exit status, flag value
 * readers, a progress bar (cli-progress, on stderr, shown only on a
 * terminal), a plain-text table, and small formatting helpers.
 * @module
 */
import cliProgress from "cli-progress";

/** Exit status for a bad flag or flag value. */
export const EXIT_USAGE = 2;

/** A bad flag or flag value: the flag's name and what is wrong with it. */
export class UsageError extends Error {
  /** The flag as written on the command line, e.g. `--mix`. */
  readonly flag: string;
  /** What is wrong, without the flag's name. */
  readonly problem: string;

  /** Builds the message `--flag: problem`. */
  constructor(flag: string, problem: string) {
    super(`${flag}: ${problem}`);
    this.name = "UsageError";
    this.flag = flag;
    this.problem = problem;
  }
}

/** The range a number flag accepts: `min`/`max` inclusive, `above` exclusive (`> 0`). */
export interface NumberRange {
  min?: number;
  max?: number;
  /** The value must be greater than this (for "any positive amount"). */
  above?: number;
  integer?: boolean;
}

/** Reads a number flag; throws UsageError naming it when it is not a number within the range. */
export function numberFlag(
  flag: string,
  text: string | undefined,
  fallback: number,
  { min = -Infinity, max = Infinity, above, integer = false }: NumberRange = {},
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) {
    throw new UsageError(flag, `${JSON.stringify(text)} is not a number`);
  }
  if (integer && !Number.isInteger(value)) {
    throw new UsageError(flag, `${JSON.stringify(text)} is not a whole number`);
  }
  if (value < min || value > max || (above !== undefined && value <= above)) {
    const low = above !== undefined ? `> ${above}` : min === -Infinity ? null : `at least ${min}`;
    const range = max === Infinity
      ? low
      : above === undefined && min !== -Infinity
      ? `from ${min} to ${max}`
      : low === null
      ? `at most ${max}`
      : `${low} and at most ${max}`;
    throw new UsageError(flag, `${JSON.stringify(text)} is out of range: expected ${range}`);
  }
  return value;
}

/** Reads an http(s) URL flag (trailing slash dropped); throws UsageError naming it when it is not one. */
export function urlFlag(flag: string, text: string | undefined): string | null {
  if (text === undefined) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(flag, `${JSON.stringify(text)} is not a URL (like http://127.0.0.1:8000)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(flag, `${JSON.stringify(text)}: expected an http:// or https:// URL`);
  }
  return url.href.replace(/\/+$/, "");
}

/** A progress bar on stderr; silent when stderr is not a terminal or `enabled` is false. */
export interface Progress {
  /** Sets the bar's value and, optionally, its label. */
  update(value: number, label?: string): void;
  /** Changes the total (the bar's 100 %). */
  setTotal(total: number): void;
  /** Stops and leaves the last state on screen. */
  stop(): void;
}

/** Starts a progress bar at 0 of `total`; `unit` formats values (default: as numbers). */
export function startProgress(
  title: string,
  total: number,
  { enabled = true, unit = (v: number) => String(v) } = {},
): Progress {
  if (!enabled || !Deno.stderr.isTerminal()) {
    return { update() {}, setTotal() {}, stop() {} };
  }
  const bar = new cliProgress.SingleBar({
    format: `${title} {bar} {percentage}% | {shown} | {label}`,
    barCompleteChar: "█",
    barIncompleteChar: "░",
    hideCursor: true,
    clearOnComplete: false,
    stopOnComplete: false,
  }, cliProgress.Presets.shades_classic);
  let currentTotal = total;
  bar.start(total, 0, { shown: `${unit(0)} / ${unit(total)}`, label: "" });
  let stopped = false;
  return {
    update(value, label) {
      if (stopped) return;
      const payload: Record<string, string> = { shown: `${unit(value)} / ${unit(currentTotal)}` };
      if (label !== undefined) payload.label = label;
      bar.update(value, payload);
    },
    setTotal(next) {
      if (stopped) return;
      currentTotal = next;
      bar.setTotal(next);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

/** Lays rows out as an aligned plain-text table; numbers are right-aligned. */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((row) => row.map((cell) => String(cell)));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length))
  );
  const numeric = headers.map((_, i) =>
    rows.length > 0 && rows.every((r) => typeof r[i] === "number")
  );
  const line = (row: string[]) =>
    row.map((cell, i) => numeric[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))
      .join("  ").trimEnd();
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join(
    "\n",
  );
}

/** Bytes as GiB with two decimals, e.g. `2.00 GiB`. */
export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/** Milliseconds with a sensible number of decimals, e.g. `3.2 ms`, `412 ms`. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "-";
  return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ms`;
}

/** Resolves after `milliseconds`, or at once when `signal` aborts. */
export function sleep(milliseconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, milliseconds);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

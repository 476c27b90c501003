/**
 * One loader for the driver libraries: an explicit path (parameter or env override)
 * first, then the usual sonames, then paths found on disk; a clear error otherwise.
 *
 * @module
 */

/** Thrown when no candidate library could be opened; says what was tried and the fix. */
export class LibraryNotFoundError extends Error {
  /** Every candidate in the order tried, e.g. `["HEADROOM_NVML_LIBRARY (unset)", "libnvidia-ml.so.1"]`. */
  readonly tried: string[];

  /** Builds the message from what was tried and how to fix it. */
  constructor(what: string, tried: string[], fix: string) {
    super(`${what} library not found: tried ${tried.join(", ")}. ${fix}`);
    this.name = "LibraryNotFoundError";
    this.tried = tried;
  }
}

/** Where to look for a library, best first. */
export interface LibraryCandidates {
  /** Env var that names the library's path, e.g. `HEADROOM_NVML_LIBRARY`. */
  envVar: string;
  /** An explicit path; when given (or the env var is set) it is the only candidate. */
  path?: string;
  /** Sonames handed to the system loader (LD_LIBRARY_PATH, ld.so.cache). */
  sonames: readonly string[];
  /** Extra paths found at open time, e.g. by listing /usr/local/cuda*\/lib64. */
  search?: () => string[];
  /** What to install when nothing is found, e.g. "Install the NVIDIA driver". */
  install: string;
}

/** A library that opened, with the path or soname that worked. */
export interface OpenedLibrary<S extends Deno.ForeignLibraryInterface> {
  lib: Deno.DynamicLibrary<S>;
  path: string;
}

/** Reads an env var, treating a missing permission like an unset variable. */
export function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens `what`'s library from the first candidate that loads.
 *
 * An explicit path (the `path` option, else the env var) is the only candidate when set:
 * a user who named a file wants that file, and silently loading another one would hide
 * the mistake. Throws {@linkcode LibraryNotFoundError} when nothing opens.
 *
 * @example
 * ```ts ignore
 * const { lib } = openLibrary("NVML", {
 *   envVar: "HEADROOM_NVML_LIBRARY",
 *   sonames: ["libnvidia-ml.so.1"],
 *   install: "Install the NVIDIA driver",
 * }, symbols);
 * ```
 */
export function openLibrary<S extends Deno.ForeignLibraryInterface>(
  what: string,
  candidates: LibraryCandidates,
  symbols: S,
): OpenedLibrary<S> {
  const fix = `${candidates.install} or set ${candidates.envVar} to its path.`;
  const explicit = candidates.path ?? readEnv(candidates.envVar);
  if (explicit !== undefined) {
    const source = candidates.path !== undefined ? "path" : candidates.envVar;
    try {
      return { lib: Deno.dlopen(explicit, symbols), path: explicit };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new LibraryNotFoundError(what, [`${source}=${explicit} (${reason})`], fix);
    }
  }
  const tried = [`${candidates.envVar} (unset)`];
  const paths = [...candidates.sonames, ...(candidates.search?.() ?? [])];
  for (const path of paths) {
    tried.push(path);
    try {
      return { lib: Deno.dlopen(path, symbols), path };
    } catch {
      // Not here or not loadable: try the next candidate.
    }
  }
  throw new LibraryNotFoundError(what, tried, fix);
}

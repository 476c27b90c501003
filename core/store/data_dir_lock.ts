/**
 * One service per data dir: a lock file beside the KV file holding the owner's pid,
 * created exclusively. Two services on one KV file overwrote each other's events without
 * a word (issue 20 finding 19). A lock whose pid is no longer running (a kill -9) is
 * stale and taken over.
 * @module
 */
import { StorageError } from "./storage_error.ts";

/** A held lock; {@link release} removes its file (safe to call twice). */
export class DataDirLock {
  #released = false;

  private constructor(readonly path: string) {}

  /**
   * Takes the lock at `path` for the KV file `kvPath`; throws a one-line StorageError
   * naming the other service's pid when a running process holds it.
   */
  static acquire(path: string, kvPath: string): DataDirLock {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        Deno.writeTextFileSync(path, `${Deno.pid}\n`, { createNew: true });
        return new DataDirLock(path);
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          if (error instanceof Deno.errors.NotFound) return new DataDirLock(path); // no dir: KV fails next
          throw new StorageError(
            `Headroom: cannot create the lock file ${path} (${(error as Error).message}): ` +
              `check that the data dir is writable, or start with another --data-dir`,
          );
        }
      }
      const owner = readPid(path);
      if (owner !== null && isRunning(owner)) {
        throw new StorageError(
          `Headroom: the data file ${kvPath} is in use by another Headroom (pid ${owner}, lock ` +
            `${path}): stop that one, or start this one with another --data-dir`,
        );
      }
      Deno.removeSync(path); // stale: its owner is gone
    }
    throw new StorageError(`Headroom: could not take the lock ${path}; retry the start`);
  }

  /** Removes the lock file if it is still this process's. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    try {
      if (readPid(this.path) === Deno.pid) Deno.removeSync(this.path);
    } catch {
      // Already gone: nothing to give back.
    }
  }
}

/** The pid written in a lock file, or null when unreadable. */
function readPid(path: string): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(path).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** True while process `pid` exists (its /proc entry: Linux; elsewhere a lock is taken over). */
function isRunning(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

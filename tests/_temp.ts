/**
 * Temp dirs the tests leave nothing of. {@link tempDir} is for one test (`await using`
 * removes it, pass or fail); {@link tempDirSync} is for helpers that hand a path on (a
 * models file, a data dir inside a config) and removes it when the test module ends
 * (the `unload` event, which `deno test` fires per module).
 *
 * @example
 * ```ts ignore
 * await using dir = await tempDir("headroom-kv-");
 * await Deno.writeTextFile(`${dir.path}/x.json`, "{}");
 * ```
 * @module
 */

/** A temp dir, removed on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/** A fresh temp dir for one test; `await using` removes it with what it holds. */
export async function tempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(ignoreNotFound),
  };
}

const leftForUnload = new Set<string>();
let listening = false;

/** A fresh temp dir removed when this test module ends; returns its path. */
export function tempDirSync(prefix: string): string {
  const path = Deno.makeTempDirSync({ prefix });
  leftForUnload.add(path);
  if (!listening) {
    listening = true;
    globalThis.addEventListener("unload", () => {
      for (const dir of leftForUnload) {
        try {
          Deno.removeSync(dir, { recursive: true });
        } catch (error) {
          ignoreNotFound(error);
        }
      }
      leftForUnload.clear();
    });
  }
  return path;
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

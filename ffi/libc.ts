/**
 * glibc's `malloc_trim` over `Deno.dlopen`: gives the process's freed heap memory back to
 * the system. Why: after a big model's session is released (an offload, a rehydrate, an
 * unload), the freed gigabytes sit in malloc's arenas (onnxruntime's buffers, the software
 * WebGPU adapter's) and RSS stays high, so the next session's copy comes on top of them.
 * Not glibc (musl, macOS) or no FFI permission: a no-op.
 * @module
 */

const symbols = {
  /** int malloc_trim(size_t pad) */
  malloc_trim: { parameters: ["usize" /* size_t pad */], result: "i32", nonblocking: true },
  /** int getrlimit(int resource, struct rlimit *rlim) */
  getrlimit: {
    parameters: ["i32", /* int resource */ "buffer" /* struct rlimit* */],
    result: "i32",
  },
  /** int setrlimit(int resource, const struct rlimit *rlim) */
  setrlimit: {
    parameters: ["i32", /* int resource */ "buffer" /* const struct rlimit* */],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** RLIMIT_NOFILE on Linux: the open-descriptor limit. */
const RLIMIT_NOFILE = 7;

const opened = new Map<string, Deno.DynamicLibrary<typeof symbols> | null>();

/**
 * The path of the C library this process runs on (from /proc/self/maps); null where it
 * cannot be found. Never grant a pipeline worker FFI on it: a plugin could call system().
 */
export function libcPath(): string | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const maps = Deno.readTextFileSync("/proc/self/maps");
    const match = /\s(\/\S*\/libc(?:\.so\.6|-[\d.]+\.so))$/m.exec(maps);
    return match?.[1] ?? null;
  } catch {
    return null;
  }
}

function open(path: string): Deno.DynamicLibrary<typeof symbols> | null {
  if (opened.has(path)) return opened.get(path)!;
  let lib: Deno.DynamicLibrary<typeof symbols> | null = null;
  try {
    lib = Deno.dlopen(path, symbols);
  } catch {
    lib = null; // not glibc, or no FFI permission: nothing to trim with
  }
  opened.set(path, lib);
  return lib;
}

/**
 * Returns freed heap memory to the system (`malloc_trim(0)`, off the JavaScript thread).
 * Resolves true when memory was released, false when there was none or no glibc.
 */
export async function trimHeap(path: string | null = libcPath()): Promise<boolean> {
  const libc = path ? open(path) : null;
  if (!libc) return false;
  return (await libc.symbols.malloc_trim(0n)) === 1;
}

/** The descriptor limit: `soft` is what applies, `hard` the most it may be raised to. */
export interface FileLimit {
  soft: number;
  hard: number;
}

/**
 * Raises the soft open-descriptor limit (RLIMIT_NOFILE) to the hard one, where allowed,
 * and answers the limit that applies after; null without glibc or FFI permission. Why: each
 * connection costs descriptors, and an accept that fails with EMFILE must not be the first
 * sign. `struct rlimit` is two `rlim_t` (unsigned long): soft, then hard.
 */
export function raiseFileLimit(path: string | null = libcPath()): FileLimit | null {
  const libc = path ? open(path) : null;
  if (!libc) return null;
  const limit = new BigUint64Array(2);
  if (libc.symbols.getrlimit(RLIMIT_NOFILE, limit) !== 0) return null;
  if (limit[0] < limit[1]) {
    const raised = BigUint64Array.of(limit[1], limit[1]);
    if (libc.symbols.setrlimit(RLIMIT_NOFILE, raised) === 0) limit[0] = limit[1];
  }
  const cap = (
    v: bigint,
  ) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v));
  return { soft: cap(limit[0]), hard: cap(limit[1]) };
}

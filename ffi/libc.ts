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
} as const satisfies Deno.ForeignLibraryInterface;

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

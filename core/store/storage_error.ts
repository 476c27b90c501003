/**
 * The store's start-up error, apart from the store so the lock and the store share it.
 * @module
 */

/**
 * The store cannot start: a KV file that does not open or read (corrupt, not a KV file),
 * or a data dir another Headroom holds. The message is one line naming the file and the
 * fix; the entry point prints it and exits 2, like a bad flag.
 */
export class StorageError extends Error {
  override name = "StorageError";
}

/**
 * One file field of a `multipart/form-data` body, as bytes: the one rule for reading an
 * upload, on the main thread for a small body and in a body worker (./body_worker.ts) for
 * a large one (Deno's form-data parser held the main thread 250–400 ms for a 20 MiB image).
 * Dependency-free: the worker loads nothing else.
 * @module
 */

/** What reading a multipart field found. */
export type MultipartField =
  | { ok: true; bytes: Uint8Array | null }
  | { ok: false; message: string };

/**
 * The bytes of the file field `name` in a multipart `body` sent with `contentType` (null
 * when there is no such file field), or why the body could not be read.
 */
export async function multipartFile(
  body: Uint8Array<ArrayBuffer>,
  contentType: string,
  name: string,
): Promise<MultipartField> {
  let form: FormData;
  try {
    form = await new Request("http://body/", {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    }).formData();
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
  const field = form.get(name);
  return {
    ok: true,
    bytes: field instanceof File ? new Uint8Array(await field.arrayBuffer()) : null,
  };
}

/**
 * Serves built assets: immutable (the name carries the content hash), in the best
 * encoding the client accepts (brotli, gzip, or none), compressed once at build time.
 * @module
 */
import type { BuiltFile } from "./bundle.ts";

/** Cache-Control for content-hashed files: a year, never revalidated. */
export const IMMUTABLE = "public, max-age=31536000, immutable";

/** The encoding to send for an `Accept-Encoding` header: br, gzip, or identity. */
export function pickEncoding(
  acceptEncoding: string | null | undefined,
): "br" | "gzip" | "identity" {
  const accepted = new Map<string, number>();
  for (const part of (acceptEncoding ?? "").split(",")) {
    const [token, ...params] = part.trim().toLowerCase().split(";");
    if (!token) continue;
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)).find(Boolean);
    accepted.set(token, q ? Number(q[1]) : 1);
  }
  const ok = (name: string) => (accepted.get(name) ?? accepted.get("*") ?? 0) > 0;
  if (ok("br")) return "br";
  if (ok("gzip")) return "gzip";
  return "identity";
}

/** The response for a built file, for a request with `acceptEncoding`. */
export function builtFileResponse(file: BuiltFile, acceptEncoding: string | null | undefined) {
  const encoding = pickEncoding(acceptEncoding);
  const body = encoding === "br" ? file.br : encoding === "gzip" ? file.gzip : file.body;
  const headers = new Headers({
    "Content-Type": file.contentType,
    "Cache-Control": IMMUTABLE,
    "Vary": "Accept-Encoding",
    "X-Content-Type-Options": "nosniff",
    "Content-Length": String(body.byteLength),
  });
  if (encoding !== "identity") headers.set("Content-Encoding", encoding);
  return new Response(body, { headers });
}

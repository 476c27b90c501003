/**
 * The one rule for "this name is this machine": `localhost`, an IPv4 literal in
 * 127.0.0.0/8 or `[::1]` (bare `::1` for a bind address), each with an optional port,
 * nothing else. A prefix test (`startsWith("127.")`) let `127.0.0.1.evil.example`, a name
 * an attacker's DNS answers, pass as loopback (issue 20, finding 4).
 * @module
 */

/** A `Host` value (or URL host) split into its name and port, when the name is loopback. */
export interface LoopbackHost {
  /** `localhost`, the dotted IPv4 literal, or `[::1]`, lower case. */
  readonly hostname: string;
  /** The port as written, or null when there is none. */
  readonly port: number | null;
}

const IPV4_LOOPBACK = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses `host` (`name`, `name:port`, `[::1]`, `[::1]:port`) and answers its parts when the
 * name is loopback by the rule above, else null. Ports must be 1–65535 in decimal.
 */
export function parseLoopbackHost(host: string): LoopbackHost | null {
  const match = /^(\[[^\]]*\]|[^:\[\]]+)(?::(\d{1,5}))?$/.exec(host.trim());
  if (!match) return null;
  const port = match[2] === undefined ? null : Number(match[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  const name = match[1].toLowerCase();
  if (name === "localhost" || name === "[::1]") return { hostname: name, port };
  const octets = IPV4_LOOPBACK.exec(name);
  if (octets && octets.slice(1).every((o) => Number(o) <= 255 && !/^0\d/.test(o))) {
    return { hostname: name, port };
  }
  return null;
}

/** True for a bind address or Host only this machine can reach (see {@link parseLoopbackHost}). */
export function isLoopback(host: string): boolean {
  return host === "::1" || parseLoopbackHost(host) !== null;
}

/**
 * The loopback host of an `Origin` header (`http://127.0.0.1:8000`), parsed by the same rule,
 * or null for a foreign, opaque (`null`) or malformed origin.
 */
export function parseLoopbackOrigin(origin: string): LoopbackHost | null {
  const match = /^(https?):\/\/([^/?#@]+)$/i.exec(origin);
  return match ? parseLoopbackHost(match[2]) : null;
}

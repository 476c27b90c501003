/**
 * A small client for a running Headroom, shared by the terminal tools: one JSON
 * request with a timeout and the API token, answered as data (status, body, error
 * code, milliseconds), never thrown.
 * @module
 */
import type { HeadroomEvent, VramReport } from "../../core/types.ts";

/** What one request got back; `status` 0 means no HTTP answer (network error or timeout). */
export interface ApiResult<T = unknown> {
  status: number;
  /** The parsed JSON body, or null when there was none or it was not JSON. */
  body: T | null;
  /** `error.code` of an error body, "timeout", "network", or null on success. */
  errorCode: string | null;
  /** `error.message` of an error body, or the network error's text. */
  errorMessage: string | null;
  /** Wall-clock milliseconds from sending to the end of the body. */
  ms: number;
}

/** Options for {@linkcode callApi}. */
export interface CallOptions {
  method?: string;
  /** Sent as JSON when given. */
  body?: unknown;
  /** API token, sent as `Authorization: Bearer …`. */
  token?: string | null;
  /** Gives up after this many milliseconds (errorCode "timeout"). */
  timeoutMs?: number;
}

/** Sends one request to `base + path` and reads its JSON answer. */
export async function callApi<T = unknown>(
  base: string,
  path: string,
  { method = "GET", body, token = null, timeoutMs = 30_000 }: CallOptions = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const started = performance.now();
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const failed = !response.ok;
    return {
      status: response.status,
      body: parsed as T | null,
      errorCode: failed ? (typeof error?.code === "string" ? error.code : "no_code") : null,
      errorMessage: failed ? (typeof error?.message === "string" ? error.message : text) : null,
      ms,
    };
  } catch (error) {
    const ms = performance.now() - started;
    const name = (error as Error)?.name;
    const timedOut = name === "TimeoutError" || name === "AbortError";
    return {
      status: 0,
      body: null,
      errorCode: timedOut ? "timeout" : "network",
      errorMessage: (error as Error)?.message ?? String(error),
      ms,
    };
  }
}

/** `GET /api/v1/hardware/vram`; throws with the reason when it does not answer 200. */
export async function getVram(
  base: string,
  token: string | null,
  timeoutMs = 10_000,
): Promise<VramReport> {
  const result = await callApi<VramReport>(base, "/api/v1/hardware/vram", { token, timeoutMs });
  if (result.status !== 200 || result.body === null) {
    throw new Error(
      `GET ${base}/api/v1/hardware/vram: ${
        result.status === 0 ? result.errorCode : `HTTP ${result.status}`
      }: ${result.errorMessage ?? "no JSON body"}`,
    );
  }
  return result.body;
}

/** Collects events from successive reports, each once (by `seq`), after a starting `seq`. */
export class EventCollector {
  #after: number;
  #seen = new Map<number, HeadroomEvent>();
  #gaps = false;
  #highest: number;

  /** Keeps only events numbered above `afterSeq` (the newest one seen before the run). */
  constructor(afterSeq: number) {
    this.#after = afterSeq;
    this.#highest = afterSeq;
  }

  /** The newest event number in a report (0 when it has none). */
  static newestSeq(report: VramReport): number {
    return Math.max(0, ...(report.events ?? []).map((e) => e.seq));
  }

  /** Adds a report's events; notes a gap when the report's window skipped some. */
  add(report: VramReport): void {
    const events = report.events ?? [];
    const fresh = events.filter((e) => e.seq > this.#after && !this.#seen.has(e.seq));
    if (fresh.length > 0) {
      const oldest = Math.min(...events.map((e) => e.seq));
      if (oldest > this.#highest + 1) this.#gaps = true;
    }
    for (const event of fresh) {
      this.#seen.set(event.seq, event);
      this.#highest = Math.max(this.#highest, event.seq);
    }
  }

  /** Every event collected, oldest first. */
  events(): HeadroomEvent[] {
    return [...this.#seen.values()].sort((a, b) => a.seq - b.seq);
  }

  /** True when some events went by between two polls unseen (the report holds the newest 20). */
  get missedSome(): boolean {
    return this.#gaps;
  }

  /** How many events of each kind were collected. */
  countsByKind(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const event of this.#seen.values()) counts[event.kind] = (counts[event.kind] ?? 0) + 1;
    return counts;
  }
}

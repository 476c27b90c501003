/**
 * The one client of Headroom's HTTP API, for the terminal tools and the page alike. It
 * needs only `fetch` and holds no browser code (no signals, no storage), so the tools
 * import it; the page's token prompt is built on it in dashboard/page_api.ts.
 *
 * - {@link callApi}: one JSON request to a base URL with the token and a timeout,
 *   answered as data (status, body, error code and message, milliseconds), never
 *   thrown: what `deno task stress` counts and `deno task pressure` polls with.
 * - {@link sendApi}: one request that resolves to the OK response or throws an
 *   {@link ApiError} (`deno task load`, the page).
 *
 * Both read a failure the same way: the `{error: {code, message}}` body, else
 * `http_<status>`; no answer at all is status 0 with code `network` (or `timeout`).
 * @module
 */
import type { ErrorBody, VramReport } from "../core/types.ts";

/** What one request got back; `status` 0 means no HTTP answer (network error or timeout). */
export interface ApiResult<T = unknown> {
  status: number;
  /** The parsed JSON body, or null when there was none or it was not JSON. */
  body: T | null;
  /** `error.code` of an error body (else `http_<status>`), "timeout", "network", or null on success. */
  errorCode: string | null;
  /** `error.message` of an error body (else its text), or the network error's text. */
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

/** The request headers for a JSON body (when there is one) and the token (when known). */
function headersFor(token: string | null, hasBody: boolean): Headers {
  const headers = new Headers();
  if (hasBody) headers.set("Content-Type", "application/json");
  if (token) headers.set("Authorization", `Bearer ${token}`);
  return headers;
}

/** The code and message of a failed answer: its error body's, else the status and text. */
function failureOf(
  status: number,
  parsed: unknown,
  text: string,
): { code: string; message: string } {
  const error = (parsed as Partial<ErrorBody> | null)?.error;
  return {
    code: typeof error?.code === "string" ? error.code : `http_${status}`,
    message: typeof error?.message === "string" ? error.message : text || `HTTP ${status}`,
  };
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** Sends one request to `base + path` and reads its JSON answer; never throws. */
export async function callApi<T = unknown>(
  base: string,
  path: string,
  { method = "GET", body, token = null, timeoutMs = 30_000 }: CallOptions = {},
): Promise<ApiResult<T>> {
  const started = performance.now();
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: headersFor(token, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    const parsed = parseJson(text);
    const failure = response.ok ? null : failureOf(response.status, parsed, text);
    return {
      status: response.status,
      body: parsed as T | null,
      errorCode: failure?.code ?? null,
      errorMessage: failure?.message ?? null,
      ms,
    };
  } catch (error) {
    const name = (error as Error)?.name;
    return {
      status: 0,
      body: null,
      errorCode: name === "TimeoutError" || name === "AbortError" ? "timeout" : "network",
      errorMessage: (error as Error)?.message ?? String(error),
      ms: performance.now() - started,
    };
  }
}

/** `GET /api/v1/hardware/vram` of the server at `base`; throws with the reason when it does not answer 200. */
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

/** An API error with the server's code and message (or a network failure's). */
export class ApiError extends Error {
  /** HTTP status, 0 for a network failure, -1 when the person cancelled the token form. */
  readonly status: number;
  /** The `error.code` of the body (`"network"`, `"cancelled"` for the cases above). */
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** The error an answer that is not OK carries (not our JSON, e.g. a proxy's page: the status). */
export async function errorOf(response: Response): Promise<ApiError> {
  const parsed = parseJson(await response.text().catch(() => ""));
  const { code, message } = failureOf(response.status, parsed, "");
  return new ApiError(response.status, code, message);
}

/**
 * Sends one request to `url` (a JSON body when `init.body` is given, the token when
 * known). Resolves to the OK response, body unread (a test load streams NDJSON); throws
 * an {@link ApiError} otherwise: the server's code and message, or status 0 when
 * nothing answered.
 */
export async function sendApi(
  url: string,
  init: RequestInit,
  token: string | null = null,
): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers: headersFor(token, init.body != null) });
  } catch (error) {
    throw new ApiError(0, "network", `the service does not answer (${(error as Error).message})`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/**
 * The dashboard's calls to the mutating API. When the server answers 401 (it has an API
 * token), the page asks for the token once — {@link tokenPrompt} is set and an island
 * shows a small form — keeps it in sessionStorage, and retries. Browser only.
 * @module
 */
import { signal } from "@preact/signals";
import type { ErrorBody } from "../core/types.ts";

/** Where the token is kept for this tab. */
export const TOKEN_KEY = "headroom.token";

/** A pending request for the token: the form shows `message` and settles it. */
export interface TokenPrompt {
  /** Why it is asked: the server's 401 message. */
  message: string;
  /** Whether a token was sent and refused (so this is a second ask). */
  rejected: boolean;
  submit(token: string): void;
  cancel(): void;
}

/** The open token request, or null. */
export const tokenPrompt = signal<TokenPrompt | null>(null);

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

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** The cookie that carries the token on reads the page cannot add a header to (EventSource). */
export const TOKEN_COOKIE = "headroom_token";

function storeToken(token: string | null) {
  // Reads only: the server accepts this cookie on GET, never on a mutating request.
  document.cookie = token === null
    ? `${TOKEN_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict`
    : `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; SameSite=Strict`;
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage may be off (private mode): the token then lasts until the next 401.
  }
}

let memoryToken: string | null = null;
let asking: Promise<string> | null = null;

/** Asks for the token (one form for every request waiting on it). */
function askToken(message: string, rejected: boolean): Promise<string> {
  asking ??= new Promise<string>((resolve, reject) => {
    const settle = () => {
      asking = null;
      tokenPrompt.value = null;
    };
    tokenPrompt.value = {
      message,
      rejected,
      submit(token) {
        settle();
        memoryToken = token.trim();
        storeToken(memoryToken);
        resolve(memoryToken);
      },
      cancel() {
        settle();
        reject(new ApiError(-1, "cancelled", "Cancelled: no API token given"));
      },
    };
  });
  return asking;
}

/** The error an answer that is not OK carries. */
export async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `HTTP ${response.status}`;
  try {
    const body = await response.json() as ErrorBody;
    if (body?.error?.message) ({ code, message } = body.error);
  } catch {
    // Not our JSON (a proxy's page): keep the status.
  }
  return new ApiError(response.status, code, message);
}

/**
 * Sends a request to the API with the token when one is known; on 401 asks for the
 * token and retries. Resolves to the OK response; throws an {@link ApiError} otherwise.
 */
async function request(path: string, init: RequestInit): Promise<Response> {
  for (;;) {
    const token = memoryToken ?? storedToken();
    const headers = new Headers(init.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    let response: Response;
    try {
      response = await fetch(path, { ...init, headers });
    } catch (error) {
      throw new ApiError(0, "network", `the service does not answer (${(error as Error).message})`);
    }
    if (response.status !== 401) {
      if (!response.ok) throw await errorOf(response);
      return response;
    }
    const refused = await errorOf(response);
    if (token !== null) {
      memoryToken = null;
      storeToken(null);
    }
    await askToken(refused.message, token !== null);
  }
}

/** POSTs `body` as JSON to `path` (see {@link request}: the token is asked for on 401). */
export function apiPost(path: string, body: unknown = {}): Promise<Response> {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** GETs JSON from `path` (with the token when the server guards reads); throws an {@link ApiError}. */
export async function apiGet<T>(path: string): Promise<T> {
  const response = await request(path, { cache: "no-store" });
  return await response.json() as T;
}

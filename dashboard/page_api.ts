/**
 * The dashboard's calls to its own server (same-origin), on the API client's
 * {@link sendApi}. When the server answers 401 (it has an API token), the page asks for
 * the token once — {@link tokenPrompt} is set and an island shows a small form — keeps it
 * in sessionStorage (and a cookie for EventSource reads), and retries; a failure throws an
 * {@link ApiError}. Browser only: the terminal tools use api_client/ directly.
 * @module
 */
import { signal } from "@preact/signals";
import { ApiError, sendApi } from "../api_client/mod.ts";

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

/**
 * The page's requests: {@link sendApi} with the token when one is known; on 401 asks
 * for the token and retries.
 */
async function request(path: string, init: RequestInit): Promise<Response> {
  for (;;) {
    const token = memoryToken ?? storedToken();
    try {
      return await sendApi(path, init, token);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
      if (token !== null) {
        memoryToken = null;
        storeToken(null);
      }
      await askToken(error.message, token !== null);
    }
  }
}

/** POSTs `body` as JSON to `path` (see {@link request}: the token is asked for on 401). */
export function apiPost(path: string, body: unknown = {}): Promise<Response> {
  return request(path, { method: "POST", body: JSON.stringify(body) });
}

/** GETs JSON from `path` (with the token when the server guards reads); throws an {@link ApiError}. */
export async function apiGet<T>(path: string): Promise<T> {
  const response = await request(path, { cache: "no-store" });
  return await response.json() as T;
}

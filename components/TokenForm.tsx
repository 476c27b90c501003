/**
 * The inline form that asks for the API token when the server answered 401: one
 * password field, kept in sessionStorage once given (see dashboard/page_api.ts).
 * @module
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { TokenPrompt } from "../dashboard/page_api.ts";

/** Props of {@link TokenForm}. */
export interface TokenFormProps {
  prompt: TokenPrompt;
}

/** Asks for the token; submitting retries the request that needed it. */
export function TokenForm({ prompt }: TokenFormProps) {
  const [value, setValue] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), [prompt]);
  return (
    <form
      class="token-form"
      aria-labelledby="token-title"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) prompt.submit(value);
      }}
    >
      <p id="token-title">
        <strong>
          {prompt.rejected ? "That token was refused." : "This server needs its API token."}
        </strong>{" "}
        <span class="token-why">{prompt.message}</span>
      </p>
      <label>
        <span class="visually-hidden">API token</span>
        <input
          ref={input}
          type="password"
          name="token"
          autoComplete="off"
          placeholder="API token"
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          required
        />
      </label>
      <button type="submit" class="btn-primary">Use token</button>
      <button type="button" onClick={() => prompt.cancel()}>Cancel</button>
      <small>Kept for this tab only (sessionStorage).</small>
    </form>
  );
}

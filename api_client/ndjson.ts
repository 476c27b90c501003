/**
 * Reads a streamed NDJSON body line by line as it arrives (fetch + a reader), so a
 * long-running answer such as a test load's progress shows up while it runs.
 * @module
 */

/**
 * Calls `onValue` with each parsed line of `response`'s body, in order, as soon as the
 * line is complete; resolves when the body ends. Blank lines are skipped; a line that
 * is not JSON rejects with its text.
 */
export async function readNdjson<T>(
  response: Response,
  onValue: (value: T) => void,
): Promise<void> {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const take = (line: string) => {
    if (line.trim() === "") return;
    let value: T;
    try {
      value = JSON.parse(line) as T;
    } catch {
      throw new Error(`the server sent a line that is not JSON: ${line.slice(0, 120)}`);
    }
    onValue(value);
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += value;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) !== -1) {
        take(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    }
    take(buffered);
  } finally {
    reader.releaseLock();
  }
}

/** Assertion helpers the test files share. */
import assert from "node:assert/strict";

/** Runs `fn` and returns what it threw, asserting it is an instance of `cls`. */
export function catchError<T>(fn: () => unknown, cls: new (...args: never[]) => T): T {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err}`);
    return err;
  }
  assert.fail(`expected ${cls.name} to be thrown`);
}

/**
 * Debian's chromium, launched headless through playwright-core with the flags this
 * machine needs (no sandbox as root, no GPU, no background network: the network is
 * closed here). One place for the fixture script, the browser tests and the benchmark.
 * @module
 */
import { type Browser, chromium } from "playwright-core";

/** Where Debian installs chromium (`apt-get install -y chromium`); CHROMIUM_PATH overrides it. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** The launch flags: headless, and nothing that reaches for the network. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Launches headless chromium. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

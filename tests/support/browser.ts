// Test support: launches Debian's headless Chromium (found on PATH through tools.ts) with the
// flags this machine needs, through playwright-core.

import { type Browser, chromium } from "playwright-core";
import { toolFor } from "./tools.ts";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Chromium's path for `what`, or null after printing why `what` skips. */
export function chromiumFor(what: string): string | null {
  return toolFor("chromium", `${what} (apt-get install -y chromium)`);
}

/** Launches Chromium from `path` (from `chromiumFor`). */
export function launchChromium(path: string): Promise<Browser> {
  return chromium.launch({ executablePath: path, args: CHROMIUM_ARGS });
}

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

/**
 * Serves an empty page on 127.0.0.1 for a tab to open before it connects: Chromium blocks
 * about:blank from reaching local addresses (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS),
 * as it would a public site. `url` is the page; shut it down with `shutdown()`.
 */
export function serveBlankPage(): { url: string; shutdown(): Promise<void> } {
  const site = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response("<!doctype html><title>push</title>", {
        headers: { "content-type": "text/html" },
      }),
  );
  return { url: `http://127.0.0.1:${site.addr.port}/`, shutdown: () => site.shutdown() };
}

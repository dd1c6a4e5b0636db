// Owns the fixed resources of the public port: the start page at / (with --page, on by default
// only without a handlers file) and the browser client library at /push-client.js when present.

import type { Options } from "../api/options.ts";
import type { Resource } from "../policy/router.ts";
import { START_PAGE } from "./start_page.ts";

/** Where the browser client library lives (embedded by `deno task compile`). */
export const CLIENT_LIBRARY = new URL("../../client/push-client.js", import.meta.url);

const encoder = new TextEncoder();

/** Whether the start page is served, by --page and whether a handlers file is loaded. */
export function pageEnabled(options: Pick<Options, "page" | "handlers">): boolean {
  return options.page === "on" || (options.page === "auto" && options.handlers === undefined);
}

/** The resources to serve, by path. The client library is served if it can be read. */
export async function publicResources(
  options: Pick<Options, "page" | "handlers">,
): Promise<Map<string, Resource>> {
  const resources = new Map<string, Resource>();
  if (pageEnabled(options)) {
    resources.set("/", {
      contentType: "text/html; charset=utf-8",
      body: encoder.encode(START_PAGE),
    });
  }
  try {
    const body = await Deno.readFile(CLIENT_LIBRARY);
    // Public code without credentials: any page may load it (the web application's own origin).
    resources.set("/push-client.js", {
      contentType: "text/javascript; charset=utf-8",
      body,
      crossOrigin: true,
    });
  } catch {
    // Not shipped in this build: nothing is served at that path.
  }
  return resources;
}

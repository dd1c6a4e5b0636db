// Tests lib/policy/router.ts's resource responses: a cross-origin resource (the browser client)
// carries `Access-Control-Allow-Origin: *`, so a page of another origin can import it as a module
// (module scripts are fetched in CORS mode); a page-only resource does not.

import assert from "node:assert/strict";
import { type Resource, route } from "../../lib/policy/router.ts";
import { publicResources } from "../../lib/server/resources.ts";

const decoder = new TextDecoder();

function get(target: string, resources: ReadonlyMap<string, Resource>): string {
  const routed = route(
    { method: "GET", target, version: "HTTP/1.1", headers: new Map() },
    resources,
  );
  assert.equal(routed.kind, "resource");
  return decoder.decode(routed.kind === "resource" ? routed.response : new Uint8Array());
}

Deno.test("/push-client.js allows every origin; the start page does not", async () => {
  const resources = await publicResources({ page: "auto", handlers: undefined });
  const library = get("/push-client.js", resources);
  assert.match(library, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(library, /\r\nAccess-Control-Allow-Origin: \*\r\n/);
  assert.doesNotMatch(get("/", resources), /Access-Control-Allow-Origin/i);
});

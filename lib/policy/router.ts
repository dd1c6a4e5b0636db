// Owns what the public port does with a request that is not a WebSocket upgrade: which paths
// serve a fixed resource (a page, the browser client), and the bytes of that response. Every
// other request goes on to the upgrade checks, which answer 426 to a plain GET as before.

import type { HttpRequest } from "../protocol/handshake.ts";

/** A fixed resource served on the public port. */
export interface Resource {
  readonly contentType: string;
  readonly body: Uint8Array;
  /**
   * Whether pages of any origin may load it (`Access-Control-Allow-Origin: *`). A module script
   * (`<script type="module">`, `import()`) is fetched in CORS mode, so a page of the web
   * application's origin can load the browser client from push-server only with this header.
   */
  readonly crossOrigin?: boolean;
}

/** Where a request goes. */
export type Route =
  | { readonly kind: "upgrade" }
  | { readonly kind: "resource"; readonly response: Uint8Array };

const encoder = new TextEncoder();

/** Whether the request asks to become a WebSocket (RFC 6455 §4.2.1 item 3). */
function asksUpgrade(request: HttpRequest): boolean {
  return /(^|,)\s*websocket\s*(,|$)/i.test(request.headers.get("upgrade") ?? "");
}

/**
 * Routes a request: an upgrade, or a GET/HEAD for a path in `resources` (matched on the path
 * without its query). Anything else is left to the upgrade checks.
 */
export function route(
  request: HttpRequest,
  resources: ReadonlyMap<string, Resource>,
): Route {
  if (asksUpgrade(request) || resources.size === 0) return { kind: "upgrade" };
  if (request.method !== "GET" && request.method !== "HEAD") return { kind: "upgrade" };
  const q = request.target.indexOf("?");
  const path = q < 0 ? request.target : request.target.slice(0, q);
  const resource = resources.get(path);
  if (!resource) return { kind: "upgrade" };
  return { kind: "resource", response: resourceResponse(resource, request.method === "HEAD") };
}

/** The bytes of a 200 response carrying `resource` (its head only, for HEAD). */
export function resourceResponse(resource: Resource, headOnly = false): Uint8Array {
  const head = encoder.encode(
    "HTTP/1.1 200 OK\r\n" +
      `Content-Type: ${resource.contentType}\r\n` +
      `Content-Length: ${resource.body.length}\r\n` +
      (resource.crossOrigin ? "Access-Control-Allow-Origin: *\r\n" : "") +
      "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
  );
  if (headOnly) return head;
  const out = new Uint8Array(head.length + resource.body.length);
  out.set(head);
  out.set(resource.body, head.length);
  return out;
}

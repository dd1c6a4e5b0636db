// Owns the opening handshake (RFC 6455 §4.2): incremental HTTP/1.1 request parsing,
// validation of the upgrade request, and the bytes of the server's responses.

import { createHash } from "node:crypto";

/** The parsed head of an HTTP request. Header names are lower case. */
export interface HttpRequest {
  readonly method: string;
  /** The request-target as sent, e.g. "/chat?room=1". */
  readonly target: string;
  readonly version: string;
  /**
   * Header values by lower-case name. A repeated list-valued header is joined with ", "
   * (RFC 9110 §5.3); Host and Content-Length may appear only once (see `addHeader`).
   */
  readonly headers: ReadonlyMap<string, string>;
}

/** A request the server must refuse, with the status to answer. The fault is the peer's. */
export interface HandshakeError {
  readonly status: number;
  readonly message: string;
  /** Extra response headers, e.g. `Sec-WebSocket-Version: 13` with 426. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RequestLimits {
  /** Most bytes in the request line plus headers; more is answered with 431. */
  readonly maxHeadSize?: number;
  /** Most header lines; more is answered with 431. */
  readonly maxHeaders?: number;
}

export const DEFAULT_MAX_HEAD_SIZE = 16 * 1024;
export const DEFAULT_MAX_HEADERS = 100;

/** Returned while the head of the request is incomplete. */
export const NEED_DATA = Symbol("NEED_DATA");

/** A complete request head and the bytes that followed it (the start of the WebSocket stream). */
export interface ParsedHead {
  readonly request: HttpRequest;
  /** Bytes after the head: a view of the input, valid until the next receive. */
  readonly trailing: Uint8Array;
  /** The head as text (latin1), blank line included: `parseRequestHead(head)` gives `request`. */
  readonly head: string;
}

const LF = 0x0a;
const CR = 0x0d;
const latin1 = new TextDecoder("latin1");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Control characters: none may appear in a request target (RFC 9112 §3.2, RFC 3986 §2). */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CTL = /[\x00-\x1f\x7f]/;
/** Control characters other than HTAB: none may appear in a field value (RFC 9110 §5.5). */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const VALUE_CTL = /[\x00-\x08\x0a-\x1f\x7f]/;
/** Optional whitespace around a field value is SP and HTAB only (RFC 9110 §5.6.3). */
const OWS_EDGES = /^[ \t]+|[ \t]+$/g;
/** RFC 9110 §7.2: Host = uri-host [ ":" port ], uri-host an IP-literal or a reg-name (RFC 3986 §3.2.2). */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?$/;
/** RFC 9112 §6.3: Content-Length = 1*DIGIT. */
const DIGITS = /^[0-9]+$/;
/**
 * Fields that must appear at most once. Joining two of them with a comma, as is done for list
 * values, would let this server and a proxy in front of it read the request differently.
 */
const SINGLETONS: Readonly<Record<string, string>> = {
  // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
  // HTTP/1.1 request message that lacks a Host header field and to any request message that
  // contains more than one Host header field line or a Host header field with an invalid
  // field value."
  "host": "Host",
  // RFC 9112 §6.3: a Content-Length that is repeated with different values, or not a single
  // number, is unrecoverable: the server MUST respond with 400 and close the connection.
  "content-length": "Content-Length",
};

/** Reads an HTTP request head from bytes that arrive in any pieces. Never rescans. */
export class RequestReader {
  readonly #maxHead: number;
  readonly #maxHeaders: number;
  #buf: Uint8Array | null = null;
  #len = 0;
  #scanned = 0;
  #done = false;

  constructor(limits: RequestLimits = {}) {
    this.#maxHead = limits.maxHeadSize ?? DEFAULT_MAX_HEAD_SIZE;
    this.#maxHeaders = limits.maxHeaders ?? DEFAULT_MAX_HEADERS;
  }

  /** Feeds bytes; returns the head once complete, NEED_DATA, or the error to answer. */
  receive(data: Uint8Array): ParsedHead | typeof NEED_DATA | HandshakeError {
    if (this.#done) throw new Error("Cannot read past the end of the request head");
    let bytes = data;
    if (this.#len > 0 || this.#buf) {
      this.#append(data);
      bytes = this.#buf!.subarray(0, this.#len);
    }
    const end = findHeadEnd(bytes, this.#scanned);
    if (end < 0) {
      if (bytes.length > this.#maxHead) return tooLarge("request head");
      this.#scanned = Math.max(0, bytes.length - 3);
      if (bytes === data) this.#append(data);
      return NEED_DATA;
    }
    this.#done = true;
    if (end > this.#maxHead) return tooLarge("request head");
    const head = latin1.decode(bytes.subarray(0, end));
    const result = parseHead(head, this.#maxHeaders);
    if ("status" in result) return result;
    // The trailing bytes are a view of whichever buffer held them.
    return { request: result, trailing: bytes.subarray(end), head };
  }

  #append(data: Uint8Array): void {
    const need = this.#len + data.length;
    if (!this.#buf || this.#buf.length < need) {
      const grown = new Uint8Array(Math.max(need, 1024, (this.#buf?.length ?? 0) * 2));
      if (this.#buf) grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(data, this.#len);
    this.#len = need;
  }
}

/** Index just past the blank line ending the head (CRLF CRLF, or bare LF LF), or -1. */
function findHeadEnd(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(LF, from); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (bytes[i + 1] === LF) return i + 2;
    if (bytes[i + 1] === CR && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}

function tooLarge(what: string): HandshakeError {
  return { status: 431, message: `The ${what} is too large` };
}

function badRequest(message: string): HandshakeError {
  return { status: 400, message };
}

/**
 * Parses a request head given as text (see `ParsedHead.head`), e.g. to rebuild a request that
 * was not kept. Returns the request, or the error to answer.
 */
export function parseRequestHead(
  text: string,
  maxHeaders = DEFAULT_MAX_HEADERS,
): HttpRequest | HandshakeError {
  return parseHead(text, maxHeaders);
}

function parseHead(text: string, maxHeaders: number): HttpRequest | HandshakeError {
  const lines = text.split("\n");
  const requestLine = stripCr(lines[0]);
  const parts = requestLine.split(" ");
  if (parts.length !== 3 || !TOKEN.test(parts[0]) || parts[1] === "") {
    return badRequest("Malformed request line");
  }
  const [method, target, version] = parts;
  if (CTL.test(target)) return badRequest("Control character in the request target");
  if (!/^HTTP\/1\.\d$/.test(version)) return badRequest(`Unsupported HTTP version ${version}`);
  const headers = new Map<string, string>();
  let count = 0;
  // The head ends with an empty line, so the last two split entries are empty.
  for (let i = 1; i < lines.length - 2; i++) {
    const line = stripCr(lines[i]);
    if (++count > maxHeaders) return tooLarge("header count");
    const error = addHeader(headers, line);
    if (error) return error;
  }
  return { method, target, version, headers };
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function addHeader(headers: Map<string, string>, line: string): HandshakeError | null {
  // RFC 9112 §5.2: obsolete line folding is rejected.
  if (line.startsWith(" ") || line.startsWith("\t")) return badRequest("Folded header line");
  const colon = line.indexOf(":");
  const name = colon > 0 ? line.slice(0, colon) : "";
  if (!TOKEN.test(name)) return badRequest("Malformed header line");
  const key = name.toLowerCase();
  const raw = line.slice(colon + 1);
  // RFC 9110 §5.5: field values hold no CTL but HTAB; a bare CR or a NUL is refused, not
  // trimmed or passed on (RFC 9112 §2.2).
  if (VALUE_CTL.test(raw)) return badRequest(`Control character in the ${name} header`);
  const value = raw.replace(OWS_EDGES, "");
  const prior = headers.get(key);
  if (prior !== undefined && key in SINGLETONS) {
    return badRequest(`More than one ${SINGLETONS[key]} header`);
  }
  // RFC 9112 §3.2: "... or a Host header field with an invalid field value" gets 400.
  if (key === "host" && !HOST.test(value)) return badRequest("Host is not a valid host name");
  if (key === "content-length" && !DIGITS.test(value)) {
    return badRequest("Content-Length is not a number");
  }
  headers.set(key, prior === undefined ? value : `${prior}, ${value}`);
  return null;
}

/** Splits a comma-separated header value into trimmed, non-empty items. */
export function headerTokens(value: string | undefined): string[] {
  if (!value) return [];
  return value.split(",").map((t) => t.trim()).filter((t) => t !== "");
}

function hasToken(value: string | undefined, token: string): boolean {
  return headerTokens(value).some((t) => t.toLowerCase() === token);
}

/** What a valid upgrade request asks for. */
export interface UpgradeRequest {
  readonly key: string;
  /** Subprotocols offered by the client, in its order of preference. */
  readonly protocols: readonly string[];
}

/** The version of the protocol this server speaks (RFC 6455 §4.1). */
export const WEBSOCKET_VERSION = "13";

/** Checks an HTTP request against RFC 6455 §4.2.1; returns what it asks for or the error. */
export function validateUpgrade(req: HttpRequest): UpgradeRequest | HandshakeError {
  const h = req.headers;
  // RFC 6455 §4.1 describes the upgrade as a GET without a body, and the bytes after the head
  // are WebSocket frames: a body would be read as frames, or by a proxy as the next request.
  if (h.has("transfer-encoding")) return badRequest("A WebSocket upgrade cannot have a body");
  if (Number(h.get("content-length") ?? "0") > 0) {
    return badRequest("A WebSocket upgrade cannot have a body");
  }
  const upgrade = hasToken(h.get("upgrade"), "websocket");
  const connection = hasToken(h.get("connection"), "upgrade");
  if (req.method === "GET" && !h.has("upgrade") && !h.has("sec-websocket-key")) {
    return {
      status: 426,
      message: "This is a WebSocket server: connect with a WebSocket client",
      headers: { "Upgrade": "websocket" },
    };
  }
  // RFC 6455 §4.2.1: "An HTTP/1.1 or higher GET request".
  if (req.method !== "GET") return badRequest(`Method ${req.method} cannot upgrade`);
  if (req.version === "HTTP/1.0") return badRequest("WebSocket needs HTTP/1.1");
  if (!h.get("host")) return badRequest("Missing Host header");
  if (!upgrade) return badRequest("Upgrade header does not name websocket");
  if (!connection) return badRequest("Connection header lacks the upgrade token");
  // RFC 6455 §4.2.2: on a version it does not speak, the server answers 426 and lists its own.
  if (h.get("sec-websocket-version") !== WEBSOCKET_VERSION) {
    return {
      status: 426,
      message: "Unsupported Sec-WebSocket-Version: this server speaks 13",
      headers: { "Sec-WebSocket-Version": WEBSOCKET_VERSION },
    };
  }
  const key = h.get("sec-websocket-key") ?? "";
  if (!isValidKey(key)) return badRequest("Sec-WebSocket-Key is not 16 bytes in base64");
  return { key, protocols: headerTokens(h.get("sec-websocket-protocol")) };
}

const BASE64_16_BYTES = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/** RFC 6455 §4.1: the key is a base64-encoded random 16-byte value. */
function isValidKey(key: string): boolean {
  return BASE64_16_BYTES.test(key);
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The Sec-WebSocket-Accept value for a key (RFC 6455 §4.2.2 step 5.4). */
export function acceptValue(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

const encoder = new TextEncoder();

/** What the 101 response agrees to besides the upgrade itself. */
export interface AcceptOptions {
  /** The chosen subprotocol (RFC 6455 §4.2.2 item 5.5). */
  readonly protocol?: string;
  /** The Sec-WebSocket-Extensions value, e.g. `DeflateParams.header` (RFC 6455 §9.1). */
  readonly extensions?: string;
}

/**
 * The bytes of the 101 response that completes the handshake. `options` may be the chosen
 * subprotocol alone (a string), as before extensions were negotiated.
 */
export function acceptResponse(key: string, options?: string | AcceptOptions): Uint8Array {
  const { protocol, extensions } = typeof options === "string" ? { protocol: options } : options ??
    {};
  let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptValue(key)}\r\n`;
  if (protocol) head += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
  if (extensions) head += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  return encoder.encode(head + "\r\n");
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** The bytes of a refusal: status line, headers, and a one-line plain-text body. */
export function errorResponse(error: HandshakeError): Uint8Array {
  const body = encoder.encode(error.message + "\n");
  let head = `HTTP/1.1 ${error.status} ${REASONS[error.status] ?? "Error"}\r\n` +
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${body.length}\r\nConnection: close\r\n`;
  for (const [name, value] of Object.entries(error.headers ?? {})) head += `${name}: ${value}\r\n`;
  const headBytes = encoder.encode(head + "\r\n");
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

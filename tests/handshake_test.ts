// Tests the opening handshake (lib/protocol/handshake.ts): the incremental request reader, the
// RFC 6455 §4.2.1 checks on an upgrade request, the accept value and the response bytes.

import assert from "node:assert/strict";
import fc from "fast-check";
import { checkProperty } from "./support/property.ts";
import {
  acceptResponse,
  acceptValue,
  errorResponse,
  type HandshakeError,
  type HttpRequest,
  NEED_DATA,
  parseRequestHead,
  type RequestLimits,
  RequestReader,
  validateUpgrade,
} from "../lib/protocol/handshake.ts";
import { bytes, concat, feedAll } from "./support/feed.ts";

type ReadResult = { request: HttpRequest; rest: Uint8Array } | { error: HandshakeError };

/** Feeds chunks until the reader answers; the rest is its trailing view plus unread chunks. */
function readChunks(chunks: Uint8Array[], limits: RequestLimits): ReadResult | "need data" {
  const reader = new RequestReader(limits);
  for (let i = 0; i < chunks.length; i++) {
    const result = reader.receive(chunks[i]);
    if (result === NEED_DATA) continue;
    if ("status" in result) return { error: result };
    return { request: result.request, rest: concat([result.trailing, ...chunks.slice(i + 1)]) };
  }
  return "need data";
}

const TRAILING = new Uint8Array([0x81, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0]);

/** Reads `head` in every feeding; with trailing data, a parsed head hands the bytes back. */
function read(head: string | Uint8Array, limits: RequestLimits = {}): ReadResult | "need data" {
  const input = typeof head === "string" ? bytes(head) : head;
  return feedAll(input, (chunks) => readChunks(chunks, limits), {
    trailing: TRAILING,
    check(withTrailing, whole) {
      if (whole !== "need data" && "request" in whole) {
        assert.deepStrictEqual(withTrailing, { ...whole, rest: concat([whole.rest, TRAILING]) });
      } else if (whole !== "need data") {
        assert.deepStrictEqual(withTrailing, whole);
      }
    },
  });
}

function readRequest(head: string, limits: RequestLimits = {}): HttpRequest {
  const result = read(head, limits);
  assert.ok(result !== "need data" && "request" in result, JSON.stringify(result));
  assert.equal(result.rest.length, 0);
  return result.request;
}

function readError(head: string | Uint8Array, limits: RequestLimits = {}): HandshakeError {
  const result = read(head, limits);
  assert.ok(
    result !== "need data" && "error" in result,
    `expected an error, got ${String(result)}`,
  );
  return result.error;
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const UPGRADE = [
  "GET /chat?room=1 HTTP/1.1",
  "Host: server.example.com",
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Key: ${KEY}`,
  "Origin: http://example.com",
  "Sec-WebSocket-Protocol: chat, superchat",
  "Sec-WebSocket-Version: 13",
];

function head(lines: string[], eol = "\r\n"): string {
  return lines.join(eol) + eol + eol;
}

// --- RequestReader -------------------------------------------------------------------------

Deno.test("RequestReader parses a request head in any pieces (RFC 9112 §2.1)", () => {
  const req = readRequest(head(UPGRADE));
  assert.equal(req.method, "GET");
  assert.equal(req.target, "/chat?room=1");
  assert.equal(req.version, "HTTP/1.1");
  assert.equal(req.headers.get("host"), "server.example.com");
  assert.equal(req.headers.get("sec-websocket-protocol"), "chat, superchat");
  assert.equal(req.headers.size, 7);
});

Deno.test("parseRequestHead of the reader's head text gives the same request again (RFC 9112 §2.1)", () => {
  const text = head([...UPGRADE, "X-Twice: a", "x-twice: b"]);
  const result = new RequestReader().receive(new TextEncoder().encode(text + "trailing"));
  assert.ok(result !== NEED_DATA && "request" in result);
  assert.equal(result.head, text);
  assert.deepStrictEqual(parseRequestHead(result.head), result.request);
  assert.equal(result.request.headers.get("x-twice"), "a, b");
});

Deno.test("RequestReader returns the bytes after the head as trailing data (RFC 6455 §4.2.2)", () => {
  const frame = new Uint8Array([0x89, 0x80, 9, 9, 9, 9]);
  const result = read(concat([bytes(head(UPGRADE)), frame]));
  assert.ok(result !== "need data" && "request" in result);
  assert.deepStrictEqual(result.rest, frame);
});

Deno.test("RequestReader parses a 16 KiB head fed one byte at a time", () => {
  const filler = Array.from({ length: 80 }, (_, i) => `X-Filler-${i}: ${"v".repeat(180)}`);
  const text = head([...UPGRADE, ...filler]);
  assert.ok(text.length > 15000 && text.length < 16 * 1024);
  const reader = new RequestReader();
  const input = bytes(text);
  for (let i = 0; i < input.length - 1; i++) {
    assert.equal(reader.receive(input.subarray(i, i + 1)), NEED_DATA);
  }
  const last = reader.receive(input.subarray(input.length - 1));
  assert.ok(last !== NEED_DATA && "request" in last, JSON.stringify(last));
  assert.equal(last.request.headers.get("x-filler-79"), "v".repeat(180));
});

Deno.test("RequestReader never rescans: bytes searched stay linear when fed one byte at a time", () => {
  const filler = Array.from({ length: 60 }, (_, i) => `X-Filler-${i}: ${"v".repeat(100)}`);
  const input = bytes(head([...UPGRADE, ...filler]));
  // Count the bytes every Uint8Array.indexOf call walks over while the reader works.
  const original = Uint8Array.prototype.indexOf;
  let walked = 0;
  Uint8Array.prototype.indexOf = function (this: Uint8Array, value: number, from = 0) {
    const found = original.call(this, value, from);
    walked += (found < 0 ? this.length : found + 1) - Math.max(0, from);
    return found;
  };
  let result;
  try {
    const reader = new RequestReader();
    for (let i = 0; i < input.length; i++) result = reader.receive(input.subarray(i, i + 1));
  } finally {
    Uint8Array.prototype.indexOf = original;
  }
  assert.ok(result !== undefined && result !== NEED_DATA && "request" in result);
  // Each byte may be looked at a few times (the last 3 are kept for a split CRLF CRLF).
  assert.ok(walked < 5 * input.length, `walked ${walked} bytes for a ${input.length}-byte head`);
});

Deno.test("RequestReader accepts bare LF line endings (RFC 9112 §2.2)", () => {
  const req = readRequest(head(UPGRADE, "\n"));
  assert.equal(req.headers.get("upgrade"), "websocket");
  assert.equal(req.headers.get("sec-websocket-version"), "13");
});

Deno.test("RequestReader joins repeated headers with a comma (RFC 9110 §5.3)", () => {
  const req = readRequest(
    head(["GET / HTTP/1.1", "Host: h", "Connection: keep-alive", "connection: Upgrade"]),
  );
  assert.equal(req.headers.get("connection"), "keep-alive, Upgrade");
});

Deno.test("RequestReader trims optional whitespace around header values (RFC 9110 §5.5)", () => {
  const req = readRequest(head(["GET / HTTP/1.1", "Host:\t h \t", "Empty:"]));
  assert.equal(req.headers.get("host"), "h");
  assert.equal(req.headers.get("empty"), "");
});

Deno.test("RequestReader waits for the blank line (NEED_DATA)", () => {
  assert.equal(read("GET / HTTP/1.1\r\nHost: h\r\n"), "need data");
});

Deno.test("head over maxHeadSize is answered with 431 (RFC 6585 §5)", () => {
  const text = head(["GET / HTTP/1.1", "Host: h", `X-Big: ${"a".repeat(200)}`]);
  assert.equal(readError(text, { maxHeadSize: 100 }).status, 431);
  assert.equal(readRequest(text, { maxHeadSize: text.length }).headers.get("host"), "h");
  assert.equal(readError(text, { maxHeadSize: text.length - 1 }).status, 431);
});

Deno.test("head over maxHeadSize with no end in sight is answered with 431 without waiting (RFC 6585 §5)", () => {
  assert.equal(
    readError(`GET / HTTP/1.1\r\nX: ${"a".repeat(300)}`, { maxHeadSize: 100 }).status,
    431,
  );
});

Deno.test("more than maxHeaders header lines are answered with 431 (RFC 6585 §5)", () => {
  const lines = ["GET / HTTP/1.1", "A: 1", "B: 2", "C: 3"];
  assert.equal(readRequest(head(lines), { maxHeaders: 3 }).headers.size, 3);
  assert.equal(readError(head([...lines, "D: 4"]), { maxHeaders: 3 }).status, 431);
});

for (
  const [name, line] of [
    ["two parts", "GET /"],
    ["four parts", "GET / HTTP/1.1 x"],
    ["a double space", "GET  / HTTP/1.1"],
    ["a method that is not a token", "G(T / HTTP/1.1"],
    ["an unknown protocol", "GET / SPDY/3"],
    ["HTTP/2 in the request line", "GET / HTTP/2.0"],
    ["an empty line", ""],
  ]
) {
  Deno.test(`malformed request line with ${name} is answered with 400 (RFC 9112 §3)`, () => {
    assert.equal(readError(head([line, "Host: h"])).status, 400);
  });
}

for (
  const [name, line] of [
    ["no colon", "Host h"],
    ["an empty name", ": value"],
    ["space before the colon", "Host : h"],
    ["a name that is not a token", "Ho(st: h"],
  ]
) {
  Deno.test(`malformed header line with ${name} is answered with 400 (RFC 9112 §5)`, () => {
    assert.equal(readError(head(["GET / HTTP/1.1", line])).status, 400);
  });
}

Deno.test("folded header line is answered with 400 (RFC 9112 §5.2)", () => {
  assert.equal(readError(head(["GET / HTTP/1.1", "X-A: 1", " continued"])).status, 400);
  assert.equal(readError(head(["GET / HTTP/1.1", "X-A: 1", "\tcontinued"])).status, 400);
});

// --- Requests a proxy could read differently: refused, never joined (RFC 9112 §3.2, §6.3) ---

for (
  const [name, lines, message] of [
    ["two Host lines", ["Host: a", "Host: b"], /More than one Host header/],
    ["two identical Host lines", ["Host: h", "host: h"], /More than one Host header/],
    [
      "two Content-Length lines that differ",
      ["Content-Length: 5", "Content-Length: 7"],
      /More than one Content-Length header/,
    ],
    [
      "two identical Content-Length lines",
      ["Content-Length: 0", "content-length: 0"],
      /More than one Content-Length header/,
    ],
    ["a Content-Length list", ["Content-Length: 5, 7"], /Content-Length is not a number/],
    ["a Content-Length of letters", ["Content-Length: abc"], /Content-Length is not a number/],
    ["a negative Content-Length", ["Content-Length: -1"], /Content-Length is not a number/],
    ["an empty Content-Length", ["Content-Length:"], /Content-Length is not a number/],
    ["a signed Content-Length", ["Content-Length: +5"], /Content-Length is not a number/],
  ] as const
) {
  Deno.test(`a request with ${name} is answered with 400 in any pieces (RFC 9112 §3.2, §6.3)`, () => {
    const base = name.includes("Host") ? ["GET / HTTP/1.1"] : ["GET / HTTP/1.1", "Host: h"];
    const error = readError(head([...base, ...lines]));
    assert.equal(error.status, 400);
    assert.match(error.message, message);
  });
}

for (
  const [name, target] of [
    ["a NUL", "/a\x00b"],
    ["a NUL at the end", "/chat\x00"],
    ["a bare CR", "/a\rb"],
    ["a TAB", "/a\tb"],
    ["an ESC", "/\x1b[0m"],
    ["a DEL", "/a\x7f"],
  ]
) {
  Deno.test(`a request target with ${name} is answered with 400 (RFC 9112 §3.2)`, () => {
    const error = readError(head([`GET ${target} HTTP/1.1`, "Host: h"]));
    assert.equal(error.status, 400);
    assert.equal(error.message, "Control character in the request target");
  });
}

for (
  const [name, value] of [
    ["a NUL", "web\x00socket"],
    ["a bare CR", "web\rsocket"],
    ["a trailing bare CR", "websocket\r"],
    ["a vertical tab at the edge", "websocket\x0b"],
    ["a form feed", "\x0cwebsocket"],
    ["a DEL", "websocket\x7f"],
  ]
) {
  Deno.test(`a header value with ${name} is answered with 400 (RFC 9110 §5.5)`, () => {
    const error = readError(head(["GET / HTTP/1.1", "Host: h", `Upgrade: ${value}`]));
    assert.equal(error.status, 400);
    assert.equal(error.message, "Control character in the Upgrade header");
  });
}

for (const host of ["a b", "a/b", "a@b", "[::1", "h:80x", "a, b"]) {
  Deno.test(`Host: ${host} is not a valid host and is answered with 400 (RFC 9112 §3.2)`, () => {
    const error = readError(head(["GET / HTTP/1.1", `Host: ${host}`]));
    assert.equal(error.status, 400);
    assert.equal(error.message, "Host is not a valid host name");
  });
}

Deno.test("Host names, IP literals and ports are accepted (RFC 9110 §7.2)", () => {
  for (
    const host of ["example.com", "127.0.0.1:8080", "[::1]:443", "xn--bcher-kva.example", "h:"]
  ) {
    assert.equal(readRequest(head(["GET / HTTP/1.1", `Host: ${host}`])).headers.get("host"), host);
  }
});

Deno.test("an HTAB inside a header value is allowed; SP and HTAB around it are trimmed (RFC 9110 §5.5)", () => {
  const req = readRequest(head(["GET / HTTP/1.1", "Host: h", "X-Tab: \t a\tb \t"]));
  assert.equal(req.headers.get("x-tab"), "a\tb");
});

Deno.test("a single Content-Length of digits is read as given (RFC 9112 §6.3)", () => {
  const req = readRequest(head(["GET / HTTP/1.1", "Host: h", "Content-Length: 0"]));
  assert.equal(req.headers.get("content-length"), "0");
});

Deno.test("RequestReader is finished once it has answered: more input is API misuse", () => {
  const reader = new RequestReader();
  reader.receive(bytes(head(UPGRADE)));
  assert.throws(() => reader.receive(new Uint8Array(1)), Error);
});

// --- validateUpgrade (RFC 6455 §4.2.1) ----------------------------------------------------

function upgrade(lines: string[]) {
  return validateUpgrade(readRequest(head(lines)));
}

function without(name: string): string[] {
  return UPGRADE.filter((l) => !l.toLowerCase().startsWith(name.toLowerCase() + ":"));
}

function replaced(name: string, value: string): string[] {
  return [...without(name), `${name}: ${value}`];
}

function status(result: ReturnType<typeof validateUpgrade>): number {
  return "status" in result ? result.status : 101;
}

Deno.test("a valid upgrade request yields its key and offered subprotocols (RFC 6455 §4.2.1)", () => {
  assert.deepStrictEqual(upgrade(UPGRADE), { key: KEY, protocols: ["chat", "superchat"] });
});

Deno.test("Upgrade and Connection are token lists in any case (RFC 6455 §4.2.1)", () => {
  const lines = [
    ...without("upgrade").filter((l) => !l.startsWith("Connection")),
    "upgrade: WebSocket",
    "CONNECTION: keep-alive, Upgrade",
  ];
  assert.equal(status(upgrade(lines)), 101);
  assert.equal(status(upgrade(replaced("Upgrade", "h2c, WEBSOCKET"))), 101);
  assert.equal(status(upgrade(replaced("Connection", "keep-alive,upgrade"))), 101);
});

for (
  const [name, extra] of [
    ["Content-Length above 0", ["Content-Length: 5"]],
    ["a large Content-Length", ["Content-Length: 99999999999999999999999"]],
    ["Transfer-Encoding: chunked", ["Transfer-Encoding: chunked"]],
    ["any Transfer-Encoding", ["Transfer-Encoding: identity"]],
    ["Transfer-Encoding beside Content-Length: 0", ["Content-Length: 0", "Transfer-Encoding: x"]],
  ]
) {
  Deno.test(`an upgrade GET with ${name} is answered with 400: it has no body (RFC 6455 §4.1)`, () => {
    const result = upgrade([...UPGRADE, ...extra]);
    assert.ok("status" in result);
    assert.equal(result.status, 400);
    assert.equal(result.message, "A WebSocket upgrade cannot have a body");
  });
}

Deno.test("an upgrade GET with Content-Length: 0 is accepted (RFC 9112 §6.3)", () => {
  assert.equal(status(upgrade([...UPGRADE, "Content-Length: 0"])), 101);
});

Deno.test("a plain GET with a body is answered with 400, not 426 (RFC 9112 §6.3)", () => {
  const result = upgrade(["GET / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"]);
  assert.equal(status(result), 400);
});

Deno.test("a method other than GET is answered with 400 (RFC 6455 §4.2.1 item 1)", () => {
  const lines = ["POST /chat HTTP/1.1", ...UPGRADE.slice(1)];
  assert.equal(status(upgrade(lines)), 400);
});

Deno.test("HTTP/1.0 is answered with 400 (RFC 6455 §4.2.1 item 1)", () => {
  assert.equal(status(upgrade(["GET /chat HTTP/1.0", ...UPGRADE.slice(1)])), 400);
});

Deno.test("a missing Host header is answered with 400 (RFC 6455 §4.2.1 item 2)", () => {
  assert.equal(status(upgrade(without("host"))), 400);
});

Deno.test("Upgrade not naming websocket is answered with 400 (RFC 6455 §4.2.1 item 3)", () => {
  assert.equal(status(upgrade(replaced("Upgrade", "h2c"))), 400);
  assert.equal(status(upgrade(without("upgrade"))), 400);
});

Deno.test("Connection without the upgrade token is answered with 400 (RFC 6455 §4.2.1 item 4)", () => {
  assert.equal(status(upgrade(replaced("Connection", "keep-alive"))), 400);
  assert.equal(status(upgrade(replaced("Connection", "upgraded"))), 400);
});

for (
  const [name, key] of [
    ["missing", null],
    ["without padding", "dGhlIHNhbXBsZSBub25jZQ"],
    ["15 bytes", "dGhlIHNhbXBsZSBub25j"],
    ["17 bytes", "dGhlIHNhbXBsZSBub25jZQA="],
    ["not base64", "dGhlIHNhbXBsZSBub25j!Q=="],
  ] as const
) {
  Deno.test(`Sec-WebSocket-Key ${name} is answered with 400 (RFC 6455 §4.2.1 item 5)`, () => {
    const lines = key === null ? without("sec-websocket-key") : replaced("Sec-WebSocket-Key", key);
    assert.equal(status(upgrade(lines)), 400);
  });
}

for (const version of ["8", "12", "14", "13, 8"]) {
  Deno.test(`Sec-WebSocket-Version ${version} is answered with 426 listing 13 (RFC 6455 §4.2.2)`, () => {
    const result = upgrade(replaced("Sec-WebSocket-Version", version));
    assert.ok("status" in result);
    assert.equal(result.status, 426);
    assert.deepStrictEqual(result.headers, { "Sec-WebSocket-Version": "13" });
  });
}

Deno.test("a missing Sec-WebSocket-Version is answered with 426 listing 13 (RFC 6455 §4.2.2)", () => {
  const result = upgrade(without("sec-websocket-version"));
  assert.ok("status" in result);
  assert.equal(result.status, 426);
  assert.deepStrictEqual(result.headers, { "Sec-WebSocket-Version": "13" });
});

Deno.test("a plain GET is answered with 426 and Upgrade: websocket (RFC 9110 §15.5.22)", () => {
  const result = upgrade(["GET / HTTP/1.1", "Host: h", "Accept: text/html"]);
  assert.ok("status" in result);
  assert.equal(result.status, 426);
  assert.deepStrictEqual(result.headers, { "Upgrade": "websocket" });
});

// --- Responses ----------------------------------------------------------------------------

Deno.test("acceptValue matches the RFC 6455 §1.3 example", () => {
  assert.equal(acceptValue("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("acceptResponse is the exact 101 response (RFC 6455 §4.2.2)", () => {
  assert.equal(
    new TextDecoder().decode(acceptResponse(KEY)),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
  );
});

Deno.test("acceptResponse names the chosen subprotocol (RFC 6455 §4.2.2 item 5.5)", () => {
  assert.equal(
    new TextDecoder().decode(acceptResponse(KEY, "chat")),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
  );
});

Deno.test("acceptResponse names the agreed extensions after the subprotocol (RFC 6455 §9.1, RFC 7692 §5)", () => {
  const head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
  const deflate = "permessage-deflate; server_no_context_takeover";
  assert.equal(
    new TextDecoder().decode(acceptResponse(KEY, { protocol: "chat", extensions: deflate })),
    `${head}Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: ${deflate}\r\n\r\n`,
  );
  assert.equal(
    new TextDecoder().decode(acceptResponse(KEY, { extensions: deflate })),
    `${head}Sec-WebSocket-Extensions: ${deflate}\r\n\r\n`,
  );
  assert.deepEqual(acceptResponse(KEY, {}), acceptResponse(KEY));
});

Deno.test("errorResponse is a complete HTTP response with its extra headers and a sized body", () => {
  const text = new TextDecoder().decode(
    errorResponse({
      status: 426,
      message: "Use 13 — please",
      headers: { "Sec-WebSocket-Version": "13" },
    }),
  );
  const body = "Use 13 — please\n";
  assert.equal(
    text,
    "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${bytes(body).length}\r\nConnection: close\r\n` +
      "Sec-WebSocket-Version: 13\r\n\r\n" + body,
  );
});

Deno.test("errorResponse gives 431 its reason phrase (RFC 6585 §5)", () => {
  const text = new TextDecoder().decode(errorResponse({ status: 431, message: "too big" }));
  assert.ok(text.startsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
});

Deno.test("the reader's output feeds validateUpgrade and acceptResponse end to end (RFC 6455 §4.2.2)", () => {
  const result = upgrade(UPGRADE);
  assert.ok("key" in result);
  const response = new TextDecoder().decode(acceptResponse(result.key, result.protocols[0]));
  assert.match(response, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
});

Deno.test("arbitrary bytes never make RequestReader throw; it answers NEED_DATA, a head or 400/431", () => {
  checkProperty(
    fc.property(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 30 }),
          fc.constantFrom(
            ...["\r\n", "\n", ": ", " ", "GET / HTTP/1.1", "Host: h", "\r\n\r\n"].map(bytes),
          ),
        ),
        { maxLength: 12 },
      ),
      (chunks) => {
        const reader = new RequestReader({ maxHeadSize: 200, maxHeaders: 5 });
        for (const chunk of chunks) {
          const result = reader.receive(chunk);
          if (result === NEED_DATA) continue;
          if ("status" in result) assert.ok([400, 431].includes(result.status), `${result.status}`);
          else validateUpgrade(result.request);
          return;
        }
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { numRuns: 2000, examples: [] },
  );
});

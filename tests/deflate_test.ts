// Tests compressing, inflating and framing messages for permessage-deflate (lib/protocol/deflate.ts,
// lib/protocol/compressed_frames.ts) by RFC 7692 section, and interop with npm:ws both ways.

import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { WebSocket as WsClient } from "ws";
import { CloseCode } from "../lib/protocol/close_codes.ts";
import { encodeCompressedFrame, MessageFrames } from "../lib/protocol/compressed_frames.ts";
import {
  compressedSizeLimit,
  compressMessage,
  DEFAULT_COMPRESSION_THRESHOLD,
  inflateMessage,
  inflateText,
} from "../lib/protocol/deflate.ts";
import {
  encodeFrameHeader,
  encodeTextFrame,
  NEED_DATA,
  Opcode,
  parseFrameHeader,
} from "../lib/protocol/frame.ts";
import { negotiateDeflate } from "../lib/protocol/permessage_deflate.ts";
import { DeflateEchoServer } from "./support/deflate_peer.ts";

const SIZES = [0, 16, 125, 126, 1000, 4096, 65535, 65536, 200_000, 1 << 20];
const LIMIT = 1 << 24;
const TIMEOUT_MS = 20_000;

/** JSON-like text of `n` bytes, compressible but not trivially so, with some non-ASCII. */
function textOf(n: number): string {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `{"id":${i * 7919 % 10007},"v":"é${i % 97}"},`;
  // Cut to n UTF-8 bytes without splitting a character: "é" is two bytes, the rest one.
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    const size = ch === "é" ? 2 : 1;
    if (bytes + size > n) break;
    out += ch;
    bytes += size;
  }
  return out.padEnd(out.length + n - bytes, " ");
}

function bytesOf(n: number): Uint8Array {
  const out = new TextEncoder().encode(textOf(n));
  assert.equal(out.length, n);
  return out;
}

Deno.test("compressed payload lacks the 00 00 ff ff tail; inflate restores sizes 0 B–1 MiB (RFC 7692 §7.2.1, §7.2.2)", () => {
  for (const n of SIZES) {
    const payload = bytesOf(n);
    const compressed = compressMessage(payload);
    assert.notDeepEqual([...compressed.subarray(-4)], [0, 0, 0xff, 0xff], `${n} B`);
    const back = inflateMessage(compressed, { maxMessageSize: LIMIT });
    assert.ok(back.ok, `${n} B`);
    assert.deepEqual(back.data, payload, `${n} B`);
  }
});

Deno.test("the empty message compresses to the single byte 00 (RFC 7692 §7.2.3.6)", () => {
  assert.deepEqual([...compressMessage(new Uint8Array(0))], [0x00]);
  const back = inflateText(new Uint8Array([0x00]), { maxMessageSize: 0 });
  assert.deepEqual(back, { ok: true, text: "" });
});

Deno.test("the RFC's example 'Hello' inflates, in one piece and in fragments (RFC 7692 §7.2.3.1, §7.2.3.2)", () => {
  const hello = new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
  assert.deepEqual(inflateText(hello, { maxMessageSize: 5 }), { ok: true, text: "Hello" });
  // §7.2.3.2: the same message split across two frames is inflated as one.
  assert.deepEqual(inflateText([hello.subarray(0, 3), hello.subarray(3)], { maxMessageSize: 5 }), {
    ok: true,
    text: "Hello",
  });
  // §7.2.3.3: a message using no compression ("BTYPE=00") inflates too.
  const stored = new Uint8Array([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]);
  assert.deepEqual(inflateText(stored, { maxMessageSize: 5 }), { ok: true, text: "Hello" });
});

Deno.test("a message split at every point across fragments inflates the same (RFC 7692 §6.1)", () => {
  const payload = bytesOf(300);
  const compressed = compressMessage(payload);
  for (let i = 0; i <= compressed.length; i++) {
    const back = inflateMessage([compressed.subarray(0, i), compressed.subarray(i)], {
      maxMessageSize: 300,
    });
    assert.ok(back.ok && back.data.length === 300, `split at ${i}`);
  }
});

Deno.test("window bits 9–15 compress into what inflate reads back (RFC 7692 §7.1.2)", () => {
  const payload = bytesOf(100_000);
  for (let bits = 9; bits <= 15; bits++) {
    const back = inflateMessage(compressMessage(payload, { windowBits: bits }), {
      maxMessageSize: LIMIT,
    });
    assert.ok(back.ok && back.data.length === payload.length, `windowBits ${bits}`);
  }
});

Deno.test("inflated size at the limit passes, one byte over fails with 1009 (RFC 6455 §7.4.1)", () => {
  const compressed = compressMessage(bytesOf(1000));
  assert.ok(inflateMessage(compressed, { maxMessageSize: 1000 }).ok);
  const over = inflateMessage(compressed, { maxMessageSize: 999 });
  assert.ok(!over.ok);
  assert.equal(over.kind, "message_too_big");
  assert.equal(over.code, CloseCode.MESSAGE_TOO_BIG);
  // The limit counts across fragments.
  const half = compressed.length >> 1;
  const split = inflateMessage([compressed.subarray(0, half), compressed.subarray(half)], {
    maxMessageSize: 999,
  });
  assert.ok(!split.ok && split.code === CloseCode.MESSAGE_TOO_BIG);
  // A limit of 0 allows only the empty message.
  assert.ok(!inflateMessage(compressMessage(bytesOf(1)), { maxMessageSize: 0 }).ok);
});

Deno.test("a 100 MiB zip bomb stops at the 1 MiB limit, quickly, with 1009 (RFC 7692 §8.1)", () => {
  const bomb = compressMessage(new Uint8Array(100 * 1024 * 1024), { level: 9 });
  assert.ok(bomb.length < 200_000, `${bomb.length} compressed bytes`);
  const started = performance.now();
  const result = inflateMessage(bomb, { maxMessageSize: 1 << 20 });
  const elapsed = performance.now() - started;
  assert.ok(!result.ok);
  assert.equal(result.code, CloseCode.MESSAGE_TOO_BIG);
  // Inflating all 100 MiB takes far longer; stopping at 1 MiB takes about a millisecond.
  assert.ok(elapsed < 500, `took ${elapsed.toFixed(1)} ms`);
});

Deno.test("invalid compressed data fails with 1007, never throws (RFC 7692 §8.1)", () => {
  for (const bad of [[0xff, 0xff, 0xff], [0x06], [0x01, 0x05, 0x00, 0x00, 0x00]]) {
    const result = inflateMessage(new Uint8Array(bad), { maxMessageSize: LIMIT });
    assert.ok(!result.ok, JSON.stringify(bad));
    assert.equal(result.kind, "invalid_compressed_data");
    assert.equal(result.code, CloseCode.INVALID_PAYLOAD_DATA);
  }
});

Deno.test("inflated text that is not UTF-8 fails with 1007; a leading BOM is kept (RFC 6455 §8.1)", () => {
  const bad = inflateText(compressMessage(new Uint8Array([0x61, 0xc3, 0x28])), {
    maxMessageSize: LIMIT,
  });
  assert.ok(!bad.ok);
  assert.equal(bad.kind, "invalid_utf8");
  assert.equal(bad.code, CloseCode.INVALID_PAYLOAD_DATA);
  const bom = inflateText(compressMessage(new TextEncoder().encode("\ufeffx")), {
    maxMessageSize: LIMIT,
  });
  assert.deepEqual(bom, { ok: true, text: "\ufeffx" });
});

Deno.test("a compressed-size limit leaves room for incompressible data at the size limit", () => {
  const random = new Uint8Array(1 << 20);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 13 & 0xff;
  for (const level of [0, 1, 9]) {
    const stored = compressMessage(random, { level });
    assert.ok(stored.length <= compressedSizeLimit(random.length), `level ${level}`);
  }
  assert.equal(compressedSizeLimit(0), 64);
});

Deno.test("a compressed frame has FIN and RSV1 set, and the opcode of the message (RFC 7692 §6)", () => {
  for (const n of [10, 125, 126, 20_000]) {
    const payload = bytesOf(n);
    const frames = encodeCompressedFrame(Opcode.TEXT, payload);
    const h = parseFrameHeader(frames[0]);
    assert.ok(h !== NEED_DATA && !("error" in h));
    assert.equal(h.fin, true);
    assert.equal(h.rsv, 4);
    assert.equal(h.opcode, Opcode.TEXT);
    assert.equal(h.payloadLength, n);
  }
  // The header option alone; the default leaves RSV1 clear.
  assert.equal(encodeFrameHeader(Opcode.BINARY, 3, { rsv1: true })[0], 0xc2);
  assert.equal(encodeFrameHeader(Opcode.BINARY, 3)[0], 0x82);
});

Deno.test("a broadcast is compressed once per window size and framed once per form (RFC 7692 §7.1.1)", () => {
  const text = textOf(4096);
  const frames = new MessageFrames(text);
  const deflate = negotiateDeflate("permessage-deflate");
  const small = negotiateDeflate("permessage-deflate; server_max_window_bits=10");
  const eight = negotiateDeflate("permessage-deflate; server_max_window_bits=8");
  const sent = [];
  for (let i = 0; i < 1000; i++) {
    sent.push(frames.forConnection(deflate), frames.forConnection(null));
    sent.push(frames.forConnection(small), frames.forConnection(eight));
  }
  assert.equal(frames.compressions, 2);
  assert.equal(new Set(sent).size, 3, "one compressed copy per window, one plain copy");
  assert.equal(sent[0], frames.forConnection(deflate));
  assert.deepEqual(frames.plain(), encodeTextFrame(text));
  const compressed = frames.forConnection(deflate);
  assert.ok(compressed.reduce((n, c) => n + c.length, 0) < text.length / 2);
  assert.equal(frames.forConnection(eight), frames.plain(), "window 8: plain (zlib has no 256 B)");
});

Deno.test("below the threshold, or when deflate does not shrink it, a message goes out plain", () => {
  const deflate = negotiateDeflate("permessage-deflate");
  const short = new MessageFrames(textOf(DEFAULT_COMPRESSION_THRESHOLD - 1));
  assert.equal(short.forConnection(deflate), short.plain());
  assert.equal(short.compressions, 0);
  let noise = "";
  for (let i = 0; i < 600; i++) noise += String.fromCharCode(33 + ((i * 2654435761) >>> 7) % 90);
  const random = new MessageFrames(noise, { threshold: 0 });
  const raw = deflateRawSync(new TextEncoder().encode(noise), { level: 3 });
  if (raw.length >= noise.length) assert.equal(random.forConnection(deflate), random.plain());
  const atThreshold = new MessageFrames(textOf(DEFAULT_COMPRESSION_THRESHOLD));
  assert.notEqual(atThreshold.forConnection(deflate), atThreshold.plain());
});

// ---- Interop with npm:ws as the client (Autobahn 12.* and 13.* ground) ----

interface WsOptions {
  readonly serverMaxWindowBits?: number;
  readonly clientMaxWindowBits?: number;
}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a ws client with permessage-deflate (threshold 0: ws compresses every message). */
async function wsClient(port: number, options: WsOptions = {}): Promise<WsClient> {
  const socket = new WsClient(`ws://127.0.0.1:${port}/`, {
    perMessageDeflate: { threshold: 0, ...options },
    maxPayload: 64 * 1024 * 1024,
  });
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    }),
    "ws open",
  );
  return socket;
}

/** Sends `pieces` as one message (fragmented when several) and returns the echo. */
function echo(socket: WsClient, pieces: string[]): Promise<string> {
  const reply = new Promise<string>((resolve, reject) => {
    socket.once("message", (data) => resolve(String(data)));
    socket.once("error", reject);
    socket.once("close", (code) => reject(new Error(`closed with ${code}`)));
  });
  pieces.forEach((piece, i) => socket.send(piece, { fin: i === pieces.length - 1 }));
  return withTimeout(reply, "echo");
}

async function closeClient(socket: WsClient): Promise<void> {
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.close(1000);
  await withTimeout(closed, "ws close");
}

Deno.test("ws inflates our messages and we inflate ws's, 16 B to 1 MiB (RFC 7692 §7.2, Autobahn 12.*)", async () => {
  const server = new DeflateEchoServer();
  try {
    const socket = await wsClient(server.port);
    assert.match(server.offer ?? "", /permessage-deflate/);
    assert.ok(server.params);
    assert.equal(socket.extensions, "permessage-deflate");
    for (const n of SIZES.filter((s) => s >= 16)) {
      const text = textOf(n);
      assert.equal(await echo(socket, [text]), text, `${n} B`);
      const got = server.received.at(-1)!;
      assert.deepEqual(got.rsv1, [true], `${n} B arrived compressed`);
    }
    // Every echo that deflate shrinks goes out compressed (16 B does not shrink).
    const shrinks = SIZES.filter((s) => s >= 16 && compressMessage(bytesOf(s)).length < s);
    assert.equal(server.compressedEchoes, shrinks.length);
    assert.ok(shrinks.length >= SIZES.length - 2);
    await closeClient(socket);
  } finally {
    await server.close();
  }
  assert.equal(server.failure, null);
});

Deno.test("fragmented compressed messages from ws: RSV1 on the first frame only, inflated once (RFC 7692 §6.1)", async () => {
  const server = new DeflateEchoServer();
  try {
    const socket = await wsClient(server.port);
    for (const [count, size] of [[2, 16], [3, 1000], [10, 65536], [64, 4096]]) {
      const pieces = Array.from({ length: count }, (_, i) => textOf(size + i));
      const whole = pieces.join("");
      assert.equal(await echo(socket, pieces), whole);
      const got = server.received.at(-1)!;
      assert.equal(got.rsv1.length, count);
      assert.deepEqual(got.rsv1, [true, ...Array(count - 1).fill(false)]);
    }
    await closeClient(socket);
  } finally {
    await server.close();
  }
  assert.equal(server.failure, null);
});

Deno.test("offers with window bits 8–15 from ws: negotiated and both ways intact (RFC 7692 §7.1.2, Autobahn 13.*)", async () => {
  for (let bits = 8; bits <= 15; bits++) {
    for (const options of [{ serverMaxWindowBits: bits }, { clientMaxWindowBits: bits }]) {
      const server = new DeflateEchoServer();
      try {
        const socket = await wsClient(server.port, options);
        const p = server.params!;
        if ("serverMaxWindowBits" in options) {
          assert.equal(p.serverMaxWindowBits, bits);
          assert.equal(p.compressWindowBits, bits === 8 ? null : bits);
        } else {
          assert.equal(p.clientMaxWindowBits, bits);
        }
        for (const n of [16, 4096, 100_000]) {
          const text = textOf(n);
          assert.equal(await echo(socket, [text]), text, `${JSON.stringify(options)} ${n} B`);
        }
        await closeClient(socket);
      } finally {
        await server.close();
      }
      assert.equal(server.failure, null, JSON.stringify(options));
      // 16 B does not shrink and goes out plain; window 8 always gets plain frames.
      assert.equal(server.compressedEchoes, options.serverMaxWindowBits === 8 ? 0 : 2);
    }
  }
});

Deno.test("a client that offers nothing gets no extension and plain frames (RFC 7692 §5)", async () => {
  const server = new DeflateEchoServer();
  try {
    const socket = new WsClient(`ws://127.0.0.1:${server.port}/`, { perMessageDeflate: false });
    await withTimeout(new Promise((resolve) => socket.once("open", resolve)), "open");
    assert.equal(server.params, null);
    assert.equal(await echo(socket, [textOf(5000)]), textOf(5000));
    assert.equal(server.compressedEchoes, 0);
    assert.deepEqual(server.received[0].rsv1, [false]);
    await closeClient(socket);
  } finally {
    await server.close();
  }
});

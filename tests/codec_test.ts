// Tests the sans-I/O connection state machine (lib/protocol/codec.ts), grouped by RFC 6455 section.
// Every input goes through feedAll: whole, byte by byte, split at every point, and trailing.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Codec,
  type CodecEvent,
  type CodecOptions,
  type CodecState,
  truncateUtf8,
} from "../lib/protocol/codec.ts";
import { CloseCode } from "../lib/protocol/close_codes.ts";
import { MERGE_LIMIT, Opcode } from "../lib/protocol/frame.ts";
import { assertSame, bytes, concat, feedAll, type TrailingCheck } from "./support/feed.ts";
import { checkProperty } from "./support/property.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

interface FrameSpec {
  readonly fin?: boolean;
  readonly rsv?: number;
  /** null sends the frame unmasked. */
  readonly mask?: Uint8Array | null;
}

/** Encodes a frame by hand (independently of lib/protocol/frame.ts), masked with MASK by default. */
function frame(opcode: number, payload: Uint8Array | string, spec: FrameSpec = {}): Uint8Array {
  const data = typeof payload === "string" ? bytes(payload) : payload;
  const mask = spec.mask === undefined ? MASK : spec.mask;
  const n = data.length;
  const head: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (n < 126) {
    head.push(maskBit | n);
  } else if (n < 65536) {
    head.push(maskBit | 126, n >> 8, n & 0xff);
  } else {
    head.push(
      maskBit | 127,
      0,
      0,
      0,
      0,
      (n >>> 24) & 0xff,
      (n >> 16) & 0xff,
      (n >> 8) & 0xff,
      n & 0xff,
    );
  }
  if (mask) head.push(...mask);
  const body = data.map((b, i) => mask ? b ^ mask[i % 4] : b);
  return concat([new Uint8Array(head), body]);
}

/** What the server codec sends, unmasked. */
function serverFrame(opcode: number, payload: Uint8Array | string): Uint8Array {
  return frame(opcode, payload, { mask: null });
}

function closeBody(code: number, reason = ""): Uint8Array {
  return concat([new Uint8Array([code >> 8, code & 0xff]), bytes(reason)]);
}

interface Run {
  readonly events: CodecEvent[];
  readonly output: Uint8Array;
  readonly state: CodecState;
  readonly closeExpected: boolean;
  readonly failure: string | null;
}

function runCodec(chunks: Uint8Array[], options: CodecOptions, before?: (c: Codec) => void): Run {
  const codec = new Codec(options);
  before?.(codec);
  // What `before` made the codec send is the test's business, not part of the result.
  codec.takeEvents();
  codec.takeOutput();
  const events: CodecEvent[] = [];
  const output: Uint8Array[] = [];
  for (const chunk of chunks) {
    codec.receive(chunk);
    events.push(...codec.takeEvents());
    output.push(...codec.takeOutput());
  }
  return {
    events,
    output: concat(output),
    state: codec.state,
    closeExpected: codec.closeExpected,
    failure: codec.failure?.reason ?? null,
  };
}

const TRAILING_PING = "trail";

/**
 * The default trailing data: a ping. After a close or a failure it must be discarded;
 * otherwise it must come out as one more ping event (answered with a pong while open).
 */
function trailingPing(role: "server" | "client"): TrailingCheck<Run> {
  return {
    trailing: frame(Opcode.PING, TRAILING_PING, role === "server" ? {} : { mask: null }),
    check(withTrailing, whole) {
      if (whole.state === "closed") {
        assertSame(withTrailing, whole, "input after the end is discarded");
        return;
      }
      assertSame(withTrailing.events, [
        ...whole.events,
        { type: "ping", data: bytes(TRAILING_PING) },
      ]);
      assert.equal(withTrailing.state, whole.state);
      if (whole.state === "open" && role === "server") {
        assertSame(
          withTrailing.output,
          concat([whole.output, serverFrame(Opcode.PONG, TRAILING_PING)]),
        );
      }
    },
  };
}

interface ServeOptions extends CodecOptions {
  readonly before?: (c: Codec) => void;
  readonly trailing?: TrailingCheck<Run>;
}

/** Feeds `input` to a fresh codec in every way and returns the (identical) result. */
function serve(input: Uint8Array, options: ServeOptions = {}): Run {
  const { before, trailing, ...codecOptions } = options;
  return feedAll(
    input,
    (chunks) => runCodec(chunks, codecOptions, before),
    trailing ?? trailingPing(codecOptions.role ?? "server"),
  );
}

/** Asserts that the input fails the connection with `code` and a Close frame carrying it. */
function assertFails(input: Uint8Array, code: number, options: ServeOptions = {}): Run {
  const run = serve(input, options);
  const last = run.events.at(-1);
  assert.equal(last?.type, "fail", `expected a failure, got ${JSON.stringify(run.events)}`);
  assert.equal(last.type === "fail" && last.code, code);
  assert.equal(run.state, "closed");
  assert.equal(run.closeExpected, true);
  assert.notEqual(run.failure, null);
  // The Close carries the failure's reason, so the peer can tell what went wrong.
  const reason = last.type === "fail" ? truncateUtf8(last.reason, 123) : "";
  const close = (options.role ?? "server") === "server"
    ? serverFrame(Opcode.CLOSE, closeBody(code, reason))
    : null;
  if (close && !options.before) {
    assertSame(run.output.subarray(run.output.length - close.length), close);
  }
  return run;
}

function text(data: string): CodecEvent {
  return { type: "text", data };
}

// --- RFC 6455 §5.1 / §5.3: masking -------------------------------------------------------

Deno.test("masked client text frame is unmasked and delivered (RFC 6455 §5.3)", () => {
  const run = serve(frame(Opcode.TEXT, "Hello"));
  assertSame(run.events, [text("Hello")]);
  assert.equal(run.output.length, 0);
  assert.equal(run.state, "open");
});

Deno.test("unmasked client frame fails with 1002 (RFC 6455 §5.1)", () => {
  assertFails(frame(Opcode.TEXT, "Hello", { mask: null }), CloseCode.PROTOCOL_ERROR);
});

Deno.test("unmasked client control frame fails with 1002 (RFC 6455 §5.1)", () => {
  assertFails(frame(Opcode.PING, "", { mask: null }), CloseCode.PROTOCOL_ERROR);
});

Deno.test("masked server frame fails a client codec with 1002 (RFC 6455 §5.1)", () => {
  assertFails(frame(Opcode.TEXT, "Hello"), CloseCode.PROTOCOL_ERROR, {
    role: "client",
    maskKey: () => MASK,
  });
});

// --- RFC 6455 §5.2: reserved bits and opcodes --------------------------------------------

for (let rsv = 1; rsv <= 7; rsv++) {
  Deno.test(`RSV bits ${rsv.toString(2).padStart(3, "0")} without an extension fail with 1002 (RFC 6455 §5.2)`, () => {
    assertFails(frame(Opcode.TEXT, "x", { rsv }), CloseCode.PROTOCOL_ERROR);
  });
}

Deno.test("RSV bits on a control frame fail with 1002 (RFC 6455 §5.2)", () => {
  assertFails(frame(Opcode.PING, "x", { rsv: 4 }), CloseCode.PROTOCOL_ERROR);
});

for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
  Deno.test(`reserved opcode ${opcode} fails with 1002 (RFC 6455 §5.2)`, () => {
    assertFails(frame(opcode, "x"), CloseCode.PROTOCOL_ERROR);
  });
}

// --- RFC 6455 §5.2: payload lengths -------------------------------------------------------

for (const n of [0, 1, 125]) {
  Deno.test(`${n}-byte payload uses the 7-bit length (RFC 6455 §5.2)`, () => {
    const data = "a".repeat(n);
    assertSame(serve(frame(Opcode.TEXT, data)).events, [text(data)]);
  });
}

for (const n of [126, 1000, 65535]) {
  Deno.test(`${n}-byte payload uses the 16-bit length (RFC 6455 §5.2)`, () => {
    const data = new Uint8Array(n).map((_, i) => i * 7);
    const input = frame(Opcode.BINARY, data);
    assert.equal(input[1] & 0x7f, 126);
    assertSame(serve(input).events, [{ type: "binary", data }]);
  });
}

Deno.test("65536-byte payload uses the 64-bit length (RFC 6455 §5.2)", () => {
  const data = new Uint8Array(65536).map((_, i) => i * 13);
  const input = frame(Opcode.BINARY, data);
  assert.equal(input[1] & 0x7f, 127);
  assertSame(serve(input).events, [{ type: "binary", data }]);
});

Deno.test("64-bit length with the top bit set fails with 1002 (RFC 6455 §5.2)", () => {
  const head = new Uint8Array([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, ...MASK]);
  assertFails(head, CloseCode.PROTOCOL_ERROR);
});

Deno.test("64-bit length above 2^53 - 1 is legal but too big: fails with 1009 (RFC 6455 §5.2, §10.4)", () => {
  // The top bit is clear, so the header is well-formed; the size is what cannot be handled.
  const head = new Uint8Array([0x82, 0xff, 0x00, 0x20, 0, 0, 0, 0, 0, 0, ...MASK]);
  assertFails(head, CloseCode.MESSAGE_TOO_BIG, { maxMessageSize: Number.MAX_SAFE_INTEGER });
  const max = new Uint8Array([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MASK]);
  assertFails(max, CloseCode.MESSAGE_TOO_BIG, { maxMessageSize: Number.MAX_SAFE_INTEGER });
});

// --- RFC 6455 §5.4: fragmentation ---------------------------------------------------------

Deno.test("fragmented text message is joined at FIN (RFC 6455 §5.4)", () => {
  const input = concat([
    frame(Opcode.TEXT, "Hel", { fin: false }),
    frame(Opcode.CONTINUATION, "lo ", { fin: false }),
    frame(Opcode.CONTINUATION, "", { fin: false }),
    frame(Opcode.CONTINUATION, "world"),
  ]);
  assertSame(serve(input).events, [text("Hello world")]);
});

Deno.test("fragmented binary message is joined at FIN (RFC 6455 §5.4)", () => {
  const input = concat([
    frame(Opcode.BINARY, new Uint8Array([1, 2, 0xff]), { fin: false }),
    frame(Opcode.CONTINUATION, new Uint8Array([0xc0, 0x80])),
  ]);
  assertSame(serve(input).events, [
    { type: "binary", data: new Uint8Array([1, 2, 0xff, 0xc0, 0x80]) },
  ]);
});

Deno.test("continuation frame without a message to continue fails with 1002 (RFC 6455 §5.4)", () => {
  assertFails(frame(Opcode.CONTINUATION, "x"), CloseCode.PROTOCOL_ERROR);
});

Deno.test("continuation after a finished message fails with 1002 (RFC 6455 §5.4)", () => {
  const run = assertFails(
    concat([frame(Opcode.TEXT, "done"), frame(Opcode.CONTINUATION, "x")]),
    CloseCode.PROTOCOL_ERROR,
  );
  assertSame(run.events[0], text("done"));
});

for (const opcode of [Opcode.TEXT, Opcode.BINARY]) {
  Deno.test(`new data message (opcode ${opcode}) inside a fragmented one fails with 1002 (RFC 6455 §5.4)`, () => {
    assertFails(
      concat([frame(Opcode.TEXT, "a", { fin: false }), frame(opcode, "b")]),
      CloseCode.PROTOCOL_ERROR,
    );
  });
}

Deno.test("ping between fragments is answered and the message stays intact (RFC 6455 §5.4)", () => {
  // "€" is E2 82 AC: split across the fragments, with the ping in between.
  const euro = bytes("€");
  const input = concat([
    frame(Opcode.TEXT, concat([bytes("a"), euro.subarray(0, 2)]), { fin: false }),
    frame(Opcode.PING, "mid"),
    frame(Opcode.CONTINUATION, concat([euro.subarray(2), bytes("b")])),
  ]);
  const run = serve(input);
  assertSame(run.events, [{ type: "ping", data: bytes("mid") }, text("a€b")]);
  assertSame(run.output, serverFrame(Opcode.PONG, "mid"));
});

Deno.test("pong between fragments is accepted (RFC 6455 §5.4)", () => {
  const input = concat([
    frame(Opcode.BINARY, "a", { fin: false }),
    frame(Opcode.PONG, "p"),
    frame(Opcode.CONTINUATION, "b"),
  ]);
  assertSame(serve(input).events, [
    { type: "pong", data: bytes("p") },
    { type: "binary", data: bytes("ab") },
  ]);
});

Deno.test("close between fragments closes the connection (RFC 6455 §5.4)", () => {
  const input = concat([
    frame(Opcode.TEXT, "a", { fin: false }),
    frame(Opcode.CLOSE, closeBody(CloseCode.GOING_AWAY)),
  ]);
  const run = serve(input);
  assertSame(run.events, [{ type: "close", code: CloseCode.GOING_AWAY, reason: "" }]);
  assert.equal(run.state, "closed");
});

// --- RFC 6455 §5.5: control frames --------------------------------------------------------

for (const opcode of [Opcode.PING, Opcode.PONG, Opcode.CLOSE]) {
  Deno.test(`fragmented control frame (opcode ${opcode}) fails with 1002 (RFC 6455 §5.5)`, () => {
    assertFails(frame(opcode, "", { fin: false }), CloseCode.PROTOCOL_ERROR);
  });

  Deno.test(`control frame (opcode ${opcode}) over 125 bytes fails with 1002 from its header (RFC 6455 §5.5)`, () => {
    // Only the header: the verdict must not wait for the payload.
    const head = frame(opcode, new Uint8Array(126)).subarray(0, 8);
    assertFails(head, CloseCode.PROTOCOL_ERROR);
  });
}

Deno.test("ping is answered with a pong carrying identical data (RFC 6455 §5.5.2)", () => {
  const data = new Uint8Array(125).map((_, i) => 255 - i);
  const run = serve(frame(Opcode.PING, data));
  assertSame(run.events, [{ type: "ping", data }]);
  assertSame(run.output, serverFrame(Opcode.PONG, data));
  assert.equal(run.state, "open");
});

Deno.test("empty ping is answered with an empty pong (RFC 6455 §5.5.2)", () => {
  const run = serve(frame(Opcode.PING, ""));
  assertSame(run.output, new Uint8Array([0x8a, 0]));
});

Deno.test("each of several pings gets its own pong, in order (RFC 6455 §5.5.2)", () => {
  const run = serve(concat([frame(Opcode.PING, "1"), frame(Opcode.PING, "2")]));
  assertSame(
    run.output,
    concat([serverFrame(Opcode.PONG, "1"), serverFrame(Opcode.PONG, "2")]),
  );
});

Deno.test("unsolicited pong is accepted without a reply (RFC 6455 §5.5.3)", () => {
  const run = serve(frame(Opcode.PONG, "hi"));
  assertSame(run.events, [{ type: "pong", data: bytes("hi") }]);
  assert.equal(run.output.length, 0);
  assert.equal(run.state, "open");
});

Deno.test("close is echoed with the same code and the connection closes (RFC 6455 §5.5.1)", () => {
  const run = serve(frame(Opcode.CLOSE, closeBody(CloseCode.NORMAL_CLOSURE, "bye")));
  assertSame(run.events, [
    { type: "close", code: CloseCode.NORMAL_CLOSURE, reason: "bye" },
  ]);
  assertSame(
    run.output,
    serverFrame(Opcode.CLOSE, closeBody(CloseCode.NORMAL_CLOSURE)),
  );
  assert.equal(run.state, "closed");
  assert.equal(run.closeExpected, true);
  assert.equal(run.failure, null);
});

Deno.test("close without a body reports 1005 and is echoed empty (RFC 6455 §5.5.1, §7.1.5)", () => {
  const run = serve(frame(Opcode.CLOSE, ""));
  assertSame(run.events, [
    { type: "close", code: CloseCode.NO_STATUS_RECEIVED, reason: "" },
  ]);
  assertSame(run.output, serverFrame(Opcode.CLOSE, ""));
});

Deno.test("close reason of 123 bytes is accepted (RFC 6455 §5.5)", () => {
  const reason = "é".repeat(61) + "r";
  const run = serve(frame(Opcode.CLOSE, closeBody(3000, reason)));
  assertSame(run.events, [{ type: "close", code: 3000, reason }]);
});

for (
  const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
) {
  Deno.test(`close code ${code} is accepted (RFC 6455 §7.4)`, () => {
    const run = serve(frame(Opcode.CLOSE, closeBody(code)));
    assertSame(run.events, [{ type: "close", code, reason: "" }]);
  });
}

for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
  Deno.test(`close code ${code} fails with 1002 (RFC 6455 §7.4.1)`, () => {
    assertFails(frame(Opcode.CLOSE, closeBody(code)), CloseCode.PROTOCOL_ERROR);
  });
}

Deno.test("close with a 1-byte payload fails with 1002 (RFC 6455 §5.5.1)", () => {
  assertFails(frame(Opcode.CLOSE, new Uint8Array([0x03])), CloseCode.PROTOCOL_ERROR);
});

Deno.test("close reason that is not UTF-8 fails with 1007 (RFC 6455 §5.5.1, §8.1)", () => {
  const body = concat([
    closeBody(CloseCode.NORMAL_CLOSURE),
    new Uint8Array([0xce, 0xba, 0xed, 0xa0, 0x80]),
  ]);
  assertFails(frame(Opcode.CLOSE, body), CloseCode.INVALID_PAYLOAD_DATA);
});

// --- RFC 6455 §8.1: UTF-8 in text messages ------------------------------------------------

Deno.test("text with multi-byte characters split across fragments is accepted (RFC 6455 §8.1)", () => {
  const all = bytes("κόσμε 😀 €");
  const parts = [all.subarray(0, 1), all.subarray(1, 7), all.subarray(7, 12), all.subarray(12)];
  const input = concat(
    parts.map((p, i) =>
      frame(i === 0 ? Opcode.TEXT : Opcode.CONTINUATION, p, { fin: i === parts.length - 1 })
    ),
  );
  assertSame(serve(input).events, [text("κόσμε 😀 €")]);
});

Deno.test("invalid UTF-8 in a text frame fails with 1007 (RFC 6455 §8.1)", () => {
  assertFails(
    frame(Opcode.TEXT, new Uint8Array([0x61, 0xff, 0x62])),
    CloseCode.INVALID_PAYLOAD_DATA,
  );
});

Deno.test("UTF-16 surrogate encoded in text fails with 1007 (RFC 6455 §8.1)", () => {
  assertFails(
    frame(Opcode.TEXT, new Uint8Array([0xed, 0xa0, 0x80])),
    CloseCode.INVALID_PAYLOAD_DATA,
  );
});

Deno.test("invalid UTF-8 fails with 1007 mid-frame, before the frame ends (RFC 6455 §8.1)", () => {
  // A 100-byte text frame of which only the header and 3 bytes have arrived.
  const whole = frame(
    Opcode.TEXT,
    concat([bytes("ab"), new Uint8Array([0xc0]), new Uint8Array(97)]),
  );
  const run = assertFails(whole.subarray(0, 2 + 4 + 3), CloseCode.INVALID_PAYLOAD_DATA);
  assert.equal(run.events.length, 1);
});

Deno.test("invalid UTF-8 in a later fragment fails with 1007 before FIN (RFC 6455 §8.1)", () => {
  const input = concat([
    frame(Opcode.TEXT, "fine", { fin: false }),
    frame(Opcode.CONTINUATION, new Uint8Array([0xf4, 0x90]), { fin: false }),
  ]);
  assertFails(input, CloseCode.INVALID_PAYLOAD_DATA);
});

Deno.test("text message ending inside a UTF-8 sequence fails with 1007 (RFC 6455 §8.1)", () => {
  const input = concat([
    frame(Opcode.TEXT, "ok", { fin: false }),
    frame(Opcode.CONTINUATION, new Uint8Array([0xe2, 0x82])),
  ]);
  assertFails(input, CloseCode.INVALID_PAYLOAD_DATA);
});

// A whole small text is checked by isValidUtf8 and decoded leniently; a larger one by the fatal
// TextDecoder. Both must give the same verdict and the same string, either side of the switch.
const STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function strictDecode(data: Uint8Array): string | null {
  try {
    return STRICT.decode(data);
  } catch {
    return null;
  }
}

/** `mixed` UTF-8 text grown to exactly `size` bytes, ending on a character boundary. */
function textOfSize(size: number): Uint8Array {
  const unit = bytes("fan-out ünïcödé ✓ 😀 ");
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = unit[i % unit.length];
  for (let i = size - 1; i >= 0 && out[i] >= 0x80; i--) out[i] = 0x20;
  return out;
}

Deno.test("whole text frames of 0–600 bytes, valid, with a BOM or broken at the end: the fatal decoder's verdict (RFC 6455 §8.1)", () => {
  for (const size of [0, 1, 64, 125, 126, 255, 256, 257, 300, 511, 512, 600]) {
    const valid = textOfSize(size);
    assertSame(
      runCodec([frame(Opcode.TEXT, valid)], {}).events,
      [text(strictDecode(valid)!)],
      `${size} bytes`,
    );
    if (size < 3) continue;
    const bom = concat([new Uint8Array([0xef, 0xbb, 0xbf]), valid.subarray(3)]);
    assertSame(runCodec([frame(Opcode.TEXT, bom)], {}).events, [text(strictDecode(bom)!)]);
    const broken = valid.slice();
    broken[size - 1] = 0xff;
    const last = runCodec([frame(Opcode.TEXT, broken)], {}).events.at(-1);
    assert.equal(
      last?.type === "fail" && last.code,
      CloseCode.INVALID_PAYLOAD_DATA,
      `${size} bytes ending in 0xff`,
    );
  }
});

Deno.test("a whole text frame of arbitrary near-UTF-8 bytes gives the fatal decoder's string or fails with 1007 (RFC 6455 §8.1, property)", () => {
  checkProperty(
    fc.property(
      fc.nat({ max: 400 }),
      fc.string({ unit: "binary", maxLength: 80 }),
      fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 2 }),
      (ascii, tail, damage) => {
        const data = concat([bytes("a".repeat(ascii)), bytes(tail)]);
        for (const [at, value] of damage) if (data.length) data[at % data.length] = value;
        const expected = strictDecode(data);
        const events = runCodec([frame(Opcode.TEXT, data)], {}).events;
        if (expected !== null) {
          assertSame(events, [text(expected)]);
        } else {
          const last = events.at(-1);
          assert.equal(last?.type === "fail" && last.code, CloseCode.INVALID_PAYLOAD_DATA);
        }
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { numRuns: 1000, examples: [] },
  );
});

Deno.test("empty text message is delivered as an empty string (RFC 6455 §5.6)", () => {
  assertSame(serve(frame(Opcode.TEXT, "")).events, [text("")]);
});

Deno.test("binary message is delivered without UTF-8 checks (RFC 6455 §5.6)", () => {
  const data = new Uint8Array([0xff, 0xfe, 0xed, 0xa0, 0x80, 0]);
  assertSame(serve(frame(Opcode.BINARY, data)).events, [{ type: "binary", data }]);
});

Deno.test("several messages in one chunk come out in order (RFC 6455 §5.6)", () => {
  const input = concat([
    frame(Opcode.TEXT, "one"),
    frame(Opcode.BINARY, "2"),
    frame(Opcode.TEXT, "3"),
  ]);
  assertSame(serve(input).events, [
    text("one"),
    { type: "binary", data: bytes("2") },
    text("3"),
  ]);
});

// --- Limits (RFC 6455 §10.4) --------------------------------------------------------------

Deno.test("message over maxMessageSize fails with 1009 from the header alone (RFC 6455 §10.4)", () => {
  const head = frame(Opcode.BINARY, new Uint8Array(1000)).subarray(0, 8);
  const run = assertFails(head, CloseCode.MESSAGE_TOO_BIG, { maxMessageSize: 999 });
  assert.equal(run.events.length, 1);
});

Deno.test("message of exactly maxMessageSize is accepted (RFC 6455 §10.4)", () => {
  const data = new Uint8Array(1000).fill(7);
  const run = serve(frame(Opcode.BINARY, data), { maxMessageSize: 1000 });
  assertSame(run.events, [{ type: "binary", data }]);
});

Deno.test("message size is counted across fragments: 1009 at the fragment's header (RFC 6455 §10.4)", () => {
  const input = concat([
    frame(Opcode.TEXT, "a".repeat(60), { fin: false }),
    frame(Opcode.CONTINUATION, "b".repeat(40), { fin: false }),
    frame(Opcode.CONTINUATION, "c".repeat(60)).subarray(0, 6),
  ]);
  assertFails(input, CloseCode.MESSAGE_TOO_BIG, { maxMessageSize: 100 });
});

Deno.test("a 2^50-byte length fails with 1009 under the default limit (RFC 6455 §10.4)", () => {
  const head = new Uint8Array([0x82, 0xff, 0, 4, 0, 0, 0, 0, 0, 0, ...MASK]);
  assertFails(head, CloseCode.MESSAGE_TOO_BIG);
});

Deno.test("control frames do not count toward the message size (RFC 6455 §5.4)", () => {
  const input = concat([
    frame(Opcode.TEXT, "a".repeat(50), { fin: false }),
    frame(Opcode.PING, "p".repeat(100)),
    frame(Opcode.CONTINUATION, "b".repeat(50)),
  ]);
  const run = serve(input, { maxMessageSize: 100 });
  assertSame(run.events.at(-1), text("a".repeat(50) + "b".repeat(50)));
});

Deno.test("message in more than maxFragments frames fails with 1009 (RFC 6455 §10.4)", () => {
  const three = concat([
    frame(Opcode.TEXT, "a", { fin: false }),
    frame(Opcode.CONTINUATION, "b", { fin: false }),
    frame(Opcode.CONTINUATION, "c"),
  ]);
  assertSame(serve(three, { maxFragments: 3 }).events, [text("abc")]);
  const four = concat([
    frame(Opcode.TEXT, "a", { fin: false }),
    frame(Opcode.CONTINUATION, "b", { fin: false }),
    frame(Opcode.CONTINUATION, "c", { fin: false }),
    frame(Opcode.CONTINUATION, "d"),
  ]);
  assertFails(four, CloseCode.MESSAGE_TOO_BIG, { maxFragments: 3 });
});

Deno.test("the fragment count starts over with each message (RFC 6455 §5.4)", () => {
  const two = concat([frame(Opcode.TEXT, "a", { fin: false }), frame(Opcode.CONTINUATION, "b")]);
  assertSame(serve(concat([two, two, two]), { maxFragments: 2 }).events, [
    text("ab"),
    text("ab"),
    text("ab"),
  ]);
});

// --- Failure, EOF and the closing handshake (RFC 6455 §7) ---------------------------------

Deno.test("input after a failure is discarded (RFC 6455 §7.1.7)", () => {
  const codec = new Codec();
  codec.receive(frame(Opcode.TEXT, "x", { rsv: 1 }));
  assert.equal(codec.takeEvents().length, 1);
  codec.takeOutput();
  codec.receive(concat([frame(Opcode.TEXT, "later"), frame(Opcode.PING, "")]));
  assertSame(codec.takeEvents(), []);
  assertSame(codec.takeOutput(), []);
});

Deno.test("TCP closing without a Close frame reports 1006 (RFC 6455 §7.1.5)", () => {
  const codec = new Codec();
  codec.receive(frame(Opcode.TEXT, "partial").subarray(0, 5));
  codec.receiveEof();
  assertSame(codec.takeEvents(), [
    { type: "close", code: CloseCode.ABNORMAL_CLOSURE, reason: "" },
  ]);
  assert.equal(codec.state, "closed");
  assert.equal(codec.closeExpected, true);
  assertSame(codec.takeOutput(), []);
});

Deno.test("EOF after the closing handshake adds no event (RFC 6455 §7.1.5)", () => {
  const codec = new Codec();
  codec.receive(frame(Opcode.CLOSE, closeBody(1000)));
  codec.takeEvents();
  codec.receiveEof();
  assertSame(codec.takeEvents(), []);
});

Deno.test("server-initiated close, then the peer's close, ends closed without a second close frame (RFC 6455 §7.1.2)", () => {
  const ours = serverFrame(Opcode.CLOSE, closeBody(CloseCode.GOING_AWAY, "restart"));
  const before = (c: Codec) => {
    c.close(CloseCode.GOING_AWAY, "restart");
    assert.equal(c.state, "closing");
    assert.equal(c.closeExpected, false);
    assertSame(concat(c.takeOutput()), ours);
  };
  const input = concat([frame(Opcode.TEXT, "late"), frame(Opcode.CLOSE, closeBody(1001))]);
  const run = serve(input, { before });
  assertSame(run.events, [
    text("late"),
    { type: "close", code: CloseCode.GOING_AWAY, reason: "" },
  ]);
  assert.equal(run.output.length, 0);
  assert.equal(run.state, "closed");
  assert.equal(run.closeExpected, true);
});

Deno.test("while closing, a ping is still answered with a pong (RFC 6455 §5.5.2)", () => {
  // §5.5.2: a Pong is due "unless it already received a Close frame"; we only sent ours.
  const run = serve(frame(Opcode.PING, "x"), { before: (c) => c.close() });
  assertSame(run.events, [{ type: "ping", data: bytes("x") }]);
  assert.equal(run.state, "closing");
  assertSame(run.output, serverFrame(Opcode.PONG, "x"));
});

Deno.test("a failure while closing queues no second close frame (RFC 6455 §7.1.7)", () => {
  const run = serve(frame(Opcode.TEXT, "x", { mask: null }), { before: (c) => c.close() });
  assert.equal(run.events[0].type, "fail");
  assert.equal(run.output.length, 0);
  assert.equal(run.state, "closed");
});

Deno.test("sending after close() sends nothing and returns false (RFC 6455 §5.5.1)", () => {
  const codec = new Codec();
  codec.close();
  codec.takeOutput();
  assert.equal(codec.sendText("x"), false);
  assert.equal(codec.sendBinary(new Uint8Array(1)), false);
  assert.equal(codec.sendEncoded({ parts: [new Uint8Array([0x81, 0])] }), false);
  assertSame(codec.takeOutput(), []);
});

Deno.test("close() refuses codes that may not be sent and reasons over 123 bytes (RFC 6455 §5.5, §7.4.1)", () => {
  const codec = new Codec();
  for (const code of [999, 1005, 1006, 1015, 5000]) {
    assert.throws(() => codec.close(code), RangeError);
  }
  assert.throws(() => codec.close(1000, "x".repeat(124)), RangeError);
  codec.close(1000, "x".repeat(123));
  assert.equal(codec.state, "closing");
});

Deno.test("control frames over 125 bytes cannot be sent (RFC 6455 §5.5)", () => {
  const codec = new Codec();
  assert.throws(() => codec.sendPing(new Uint8Array(126)), RangeError);
  assert.throws(() => codec.sendPong(new Uint8Array(126)), RangeError);
  codec.sendPing(new Uint8Array(125));
  assert.equal(concat(codec.takeOutput()).length, 127);
});

// --- Sending ------------------------------------------------------------------------------

Deno.test("server frames are unmasked with the shortest length (RFC 6455 §5.1, §5.2)", () => {
  const codec = new Codec();
  codec.sendText("hi");
  codec.sendBinary(new Uint8Array(200));
  codec.sendBinary(new Uint8Array(70000));
  assertSame(
    concat(codec.takeOutput()),
    concat([
      serverFrame(Opcode.TEXT, "hi"),
      serverFrame(Opcode.BINARY, new Uint8Array(200)),
      serverFrame(Opcode.BINARY, new Uint8Array(70000)),
    ]),
  );
});

Deno.test("client codec masks every frame with a fresh key (RFC 6455 §5.3)", () => {
  const keys = [new Uint8Array([1, 2, 3, 4]), new Uint8Array([9, 8, 7, 6])];
  let k = 0;
  const codec = new Codec({ role: "client", maskKey: () => keys[k++] });
  codec.sendText("Hello");
  codec.sendBinary(new Uint8Array(300).fill(0xaa));
  assertSame(
    concat(codec.takeOutput()),
    concat([
      frame(Opcode.TEXT, "Hello", { mask: keys[0] }),
      frame(Opcode.BINARY, new Uint8Array(300).fill(0xaa), { mask: keys[1] }),
    ]),
  );
});

Deno.test("client codec reads unmasked server frames and answers pings masked (RFC 6455 §5.1, §5.5.2)", () => {
  const input = concat([
    frame(Opcode.TEXT, "srv", { mask: null }),
    frame(Opcode.PING, "p", { mask: null }),
  ]);
  const run = serve(input, { role: "client", maskKey: () => MASK });
  assertSame(run.events, [text("srv"), { type: "ping", data: bytes("p") }]);
  assertSame(run.output, frame(Opcode.PONG, "p"));
});

Deno.test("client codec without a mask key is API misuse and throws (RFC 6455 §5.3)", () => {
  assert.throws(() => new Codec({ role: "client" }), TypeError);
});

Deno.test("sendBinary copies a small payload: the caller may reuse its array at once", () => {
  const codec = new Codec();
  const data = new Uint8Array([1, 2, 3]);
  codec.sendBinary(data);
  data.fill(0);
  assertSame(
    concat(codec.takeOutput()),
    serverFrame(Opcode.BINARY, new Uint8Array([1, 2, 3])),
  );
});

// --- Properties ---------------------------------------------------------------------------

type Message = { kind: "text"; text: string; cuts: number[] } | {
  kind: "binary";
  data: Uint8Array;
  cuts: number[];
} | { kind: "ping"; data: Uint8Array };

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    kind: fc.constant("text" as const),
    text: fc.string({ unit: "binary", maxLength: 60 }),
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
  }),
  fc.record({
    kind: fc.constant("binary" as const),
    data: fc.uint8Array({ maxLength: 300 }),
    cuts: fc.array(fc.nat(), { maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant("ping" as const), data: fc.uint8Array({ maxLength: 125 }) }),
);

/** Encodes a message as frames cut at `cuts` (byte offsets, so UTF-8 may be split anywhere). */
function encodeMessage(m: Message, mask: Uint8Array): Uint8Array {
  if (m.kind === "ping") return frame(Opcode.PING, m.data, { mask });
  const data = m.kind === "text" ? bytes(m.text) : m.data;
  const points = [...new Set(m.cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const bounds = [0, ...points, data.length];
  const frames: Uint8Array[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const opcode = i === 0
      ? (m.kind === "text" ? Opcode.TEXT : Opcode.BINARY)
      : Opcode.CONTINUATION;
    frames.push(
      frame(opcode, data.subarray(bounds[i], bounds[i + 1]), {
        fin: i + 2 === bounds.length,
        mask,
      }),
    );
  }
  return concat(frames);
}

function expectedEvent(m: Message): CodecEvent {
  if (m.kind === "text") return { type: "text", data: new TextDecoder().decode(bytes(m.text)) };
  return { type: m.kind, data: m.data };
}

Deno.test("any sequence of valid messages, masked with any keys and cut anywhere, comes out intact (RFC 6455 §5.4)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(messageArb, fc.uint8Array({ minLength: 4, maxLength: 4 })), {
        maxLength: 6,
      }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (messages, cuts) => {
        const input = concat(messages.map(([m, mask]) => encodeMessage(m, mask)));
        const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        const bounds = [0, ...points, input.length];
        const chunks = bounds.slice(1).map((end, i) => input.slice(bounds[i], end));
        const run = runCodec(chunks, {});
        assertSame(run.events, messages.map(([m]) => expectedEvent(m)));
        assert.equal(run.state, "open");
        const pongs = messages.filter(([m]) => m.kind === "ping").map(([m]) =>
          serverFrame(Opcode.PONG, (m as { data: Uint8Array }).data)
        );
        assertSame(run.output, concat(pongs));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("arbitrary bytes never make the codec throw; a failure is always a 1002/1007/1009 close (RFC 6455 §7.1.7)", () => {
  const FAIL_CODES = [
    CloseCode.PROTOCOL_ERROR,
    CloseCode.INVALID_PAYLOAD_DATA,
    CloseCode.MESSAGE_TOO_BIG,
  ];
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          // Plausible headers: any first byte, mask bit mostly set, any length form.
          fc.tuple(
            fc.nat({ max: 255 }),
            fc.nat({ max: 255 }),
            fc.uint8Array({ minLength: 12, maxLength: 12 }),
          )
            .map(([b0, b1, rest]) => concat([new Uint8Array([b0, b1 | 0x80]), rest])),
        ),
        { maxLength: 10 },
      ),
      (chunks) => {
        const codec = new Codec({ maxMessageSize: 1000 });
        for (const chunk of chunks) codec.receive(chunk);
        const events = codec.takeEvents();
        const fail = events.find((e) => e.type === "fail");
        if (fail && fail.type === "fail") {
          assert.ok(
            FAIL_CODES.includes(fail.code as typeof FAIL_CODES[number]),
            `code ${fail.code}`,
          );
          assert.equal(events.at(-1), fail);
          assert.equal(codec.state, "closed");
        }
        codec.receiveEof();
      },
    ),
    { numRuns: 2000 },
  );
});

// --- An in-memory client and server talking to each other ---------------------------------

/** Moves everything `from` wants to send into `to`, and returns the events `to` produced. */
function deliver(from: Codec, to: Codec): CodecEvent[] {
  for (const part of from.takeOutput()) to.receive(part.slice());
  return to.takeEvents();
}

function pair(): { client: Codec; server: Codec } {
  let n = 0;
  const maskKey = () => new Uint8Array([n++, 0x5a, 0xa5, 0xff]);
  return { client: new Codec({ role: "client", maskKey }), server: new Codec() };
}

Deno.test("client and server codecs exchange messages both ways (RFC 6455 §5.6)", () => {
  const { client, server } = pair();
  const big = new Uint8Array(70000).map((_, i) => i);
  client.sendText("from client €");
  client.sendBinary(big);
  assertSame(deliver(client, server), [
    text("from client €"),
    { type: "binary", data: big },
  ]);
  server.sendText("from server");
  server.sendBinary(big);
  assertSame(deliver(server, client), [
    text("from server"),
    { type: "binary", data: big },
  ]);
});

Deno.test("a ping from either side comes back as a pong with its data (RFC 6455 §5.5.2)", () => {
  const { client, server } = pair();
  client.sendPing(bytes("c"));
  assertSame(deliver(client, server), [{ type: "ping", data: bytes("c") }]);
  assertSame(deliver(server, client), [{ type: "pong", data: bytes("c") }]);
  server.sendPing(bytes("s"));
  assertSame(deliver(server, client), [{ type: "ping", data: bytes("s") }]);
  assertSame(deliver(client, server), [{ type: "pong", data: bytes("s") }]);
});

for (const initiator of ["client", "server"] as const) {
  Deno.test(`a closing handshake started by the ${initiator} leaves both closed (RFC 6455 §7.1.2)`, () => {
    const codecs = pair();
    const first = codecs[initiator];
    const second = initiator === "client" ? codecs.server : codecs.client;
    first.close(4001, "done");
    assertSame(deliver(first, second), [{ type: "close", code: 4001, reason: "done" }]);
    assert.equal(second.state, "closed");
    assert.equal(first.state, "closing");
    assertSame(deliver(second, first), [{ type: "close", code: 4001, reason: "" }]);
    assert.equal(first.state, "closed");
    assert.equal(first.closeExpected && second.closeExpected, true);
  });
}

Deno.test("sendBinary queues a payload over MERGE_LIMIT by reference, as documented", () => {
  const codec = new Codec();
  const data = new Uint8Array(MERGE_LIMIT + 1);
  codec.sendBinary(data);
  assert.equal(codec.takeOutput()[1], data);
});

Deno.test("events come one at a time, so a reply to a message precedes the Close of a later fatal frame (RFC 6455 §5.5.1, §7.1.7)", () => {
  const sent: string[] = [];
  const codec = new Codec({
    sink: {
      frames(parts) {
        const f = concat([...parts]);
        sent.push(f[0] === 0x88 ? "close" : f[0] === 0x8a ? "pong" : "reply");
        return true;
      },
    },
  });
  codec.receive(concat([
    frame(Opcode.TEXT, "first"),
    frame(Opcode.PING, "p"),
    frame(Opcode.TEXT, "second"),
    frame(Opcode.TEXT, "bad", { rsv: 4 }),
  ]));
  const seen: string[] = [];
  for (let e = codec.nextEvent(); e !== null; e = codec.nextEvent()) {
    seen.push(e.type);
    if (e.type === "text") codec.sendText(`re: ${e.data}`);
  }
  assert.deepStrictEqual(seen, ["text", "ping", "text", "fail"]);
  assert.deepStrictEqual(sent, ["reply", "pong", "reply", "close"]);
});

Deno.test("a failure sends exactly one Close, whatever triggers it later (RFC 6455 §5.5.1)", () => {
  const codec = new Codec();
  codec.fail("slow-consumer");
  codec.fail("slow-consumer");
  codec.close(1000);
  codec.receive(frame(Opcode.TEXT, "x", { mask: null }));
  codec.takeEvents();
  const out = concat(codec.takeOutput());
  assertSame(out, serverFrame(Opcode.CLOSE, closeBody(4000, "slow consumer")));
});

Deno.test("an internal error closes with 1011 and no reason text (STYLE rule 4)", () => {
  const codec = new Codec();
  codec.fail("internal-error");
  assertSame(concat(codec.takeOutput()), serverFrame(Opcode.CLOSE, closeBody(1011)));
});

Deno.test("receive() keeps unparsed input until nextEvent() consumes it", () => {
  const codec = new Codec();
  const two = concat([frame(Opcode.TEXT, "a"), frame(Opcode.TEXT, "b")]);
  codec.receive(two.subarray(0, 3));
  codec.receive(two.subarray(3));
  assertSame(codec.takeEvents(), [text("a"), text("b")]);
});

Deno.test("a maximum-size message in 64-byte fragments passes with the defaults (Autobahn 9.3.1, RFC 6455 §5.4)", () => {
  const max = 4 * 1024 * 1024;
  const codec = new Codec({ maxMessageSize: max });
  const piece = new Uint8Array(64).fill(0x61);
  const frames: Uint8Array[] = [frame(Opcode.TEXT, piece, { fin: false })];
  for (let i = 1; i < max / 64; i++) frames.push(frame(Opcode.CONTINUATION, piece, { fin: false }));
  frames.push(frame(Opcode.CONTINUATION, new Uint8Array(0)));
  const events: CodecEvent[] = [];
  for (const f of frames) {
    codec.receive(f);
    events.push(...codec.takeEvents());
  }
  assert.equal(events.length, 1);
  assert.equal(events[0].type === "text" && events[0].data.length, max);
});

Deno.test("a leading U+FEFF is part of the text, single-frame and fragmented (STYLE: text is data)", () => {
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69]);
  assertSame(serve(frame(Opcode.TEXT, bom)).events, [text("\uFEFFhi")]);
  const split = concat([
    frame(Opcode.TEXT, bom.subarray(0, 2), { fin: false }),
    frame(Opcode.CONTINUATION, bom.subarray(2)),
  ]);
  assertSame(serve(split).events, [text("\uFEFFhi")]);
});

Deno.test("frames announcing 16 MiB allocate only what arrived (RFC 6455 §10.4)", () => {
  const CODECS = 100;
  const announced = 16 * 1024 * 1024;
  const header = new Uint8Array(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  new DataView(header.buffer).setUint32(6, announced);
  header.set(MASK, 10);
  const before = Deno.memoryUsage().external;
  const held: Codec[] = [];
  for (let i = 0; i < CODECS; i++) {
    const codec = new Codec();
    codec.receive(concat([header, new Uint8Array(1024)]));
    assertSame(codec.takeEvents(), []);
    held.push(codec);
  }
  const grown = Deno.memoryUsage().external - before;
  // Reserving the announced size would take 1.6 GB here; what arrived is 100 KiB.
  assert.ok(grown < 64 * 1024 * 1024, `external memory grew by ${grown} bytes`);
  assert.equal(held.length, CODECS);
});

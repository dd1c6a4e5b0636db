// The protocol conformance table (Autobahn's ground): for each case, the bytes a client sends
// after the handshake and what the echo server must answer. One table, two runners: an
// in-memory client↔server pair and the real server process over TCP.

import { clientFrame, closeBody, type FrameSpec } from "../support/raw_client.ts";

/** Opcodes written out here so the table does not depend on the code under test. */
export const Op = {
  CONT: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** One frame the server must send back, in order. `close: 1005` means an empty Close body. */
export type Reply =
  | { readonly text: string }
  | { readonly binary: Uint8Array }
  | { readonly pong: Uint8Array }
  | { readonly close: number };

export interface ConformanceCase {
  /** States the rule and cites RFC 6455. */
  readonly name: string;
  /** Bytes the client sends after the handshake, in order. */
  readonly send: readonly Uint8Array[];
  /** Every frame the server sends back, in order (nothing else may come). */
  readonly expect: readonly Reply[];
  /** Whether the server then closes TCP; otherwise the connection must still answer a ping. */
  readonly tcpCloses: boolean;
  /**
   * Echoes of valid messages that arrived in the same read as a later fatal frame. They must
   * come before the Close (Autobahn grades their absence NON-STRICT).
   */
  readonly precede?: readonly Reply[];
}

/** The reply sequences a case accepts, each followed by `tail` (the alive check's pong). */
export function allowedReplies(c: ConformanceCase, tail: readonly Reply[] = []): Reply[][] {
  return [[...(c.precede ?? []), ...c.expect, ...tail]];
}

/** The --max-message-size both runners use. */
export const MAX_MESSAGE_SIZE = 1024 * 1024;

const enc = new TextEncoder();
const bytes = (...b: number[]) => new Uint8Array(b);
const f = (spec: FrameSpec) => clientFrame(spec);
const text = (payload: string | Uint8Array, more: Partial<FrameSpec> = {}) =>
  f({ opcode: Op.TEXT, payload, ...more });
const pattern = (n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
};
const ascii = (n: number) => "x".repeat(n);
const close = (code: number, reason: string | Uint8Array = "") =>
  f({ opcode: Op.CLOSE, payload: closeBody(code, reason) });
/** Only the frame header and the first `n` payload bytes of `frame` (a frame left unfinished). */
const truncated = (frame: Uint8Array, payloadBytes: number, headerLength: number) =>
  frame.subarray(0, headerLength + payloadBytes);

const PROTOCOL_ERROR = 1002;
const INVALID_DATA = 1007;
const TOO_BIG = 1009;

const fails = (name: string, send: Uint8Array[], code: number, precede?: Reply[]) => ({
  name,
  send,
  expect: [{ close: code }],
  tcpCloses: true,
  precede,
});
const echoes = (name: string, send: Uint8Array[], expect: Reply[]) => ({
  name,
  send,
  expect,
  tcpCloses: false,
});

const sizes = [0, 125, 126, 65535, 65536];
const validCloseCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
const invalidCloseCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
const invalidUtf8: [string, Uint8Array][] = [
  ["a lone continuation byte", bytes(0x80)],
  ["0xFF", bytes(0x61, 0xff)],
  ["an overlong '/' (C0 AF)", bytes(0xc0, 0xaf)],
  ["an overlong 3-byte form (E0 80 AF)", bytes(0xe0, 0x80, 0xaf)],
  ["a UTF-16 surrogate (ED A0 80)", bytes(0xed, 0xa0, 0x80)],
  ["a code point above U+10FFFF (F4 90 80 80)", bytes(0xf4, 0x90, 0x80, 0x80)],
  ["a sequence cut short by the end of the message (CE)", bytes(0x61, 0xce)],
];
const kosme = "κόσμε";
const kosmeBytes = enc.encode(kosme);

export const CASES: readonly ConformanceCase[] = [
  // ---- §5.2, §5.6 framing: payload lengths in all three encodings ----
  ...sizes.map((n) =>
    echoes(`text message of ${n} bytes is echoed (RFC 6455 §5.2, §5.6)`, [text(ascii(n))], [
      { text: ascii(n) },
    ])
  ),
  ...sizes.map((n) =>
    echoes(
      `binary message of ${n} bytes is echoed (RFC 6455 §5.2, §5.6)`,
      [f({ opcode: Op.BINARY, payload: pattern(n) })],
      [{ binary: pattern(n) }],
    )
  ),
  echoes(
    "several messages in one write are each echoed, in order (RFC 6455 §5.2)",
    [new Uint8Array([...text("one"), ...text("two"), ...f({ opcode: Op.BINARY, payload: "3" })])],
    [{ text: "one" }, { text: "two" }, { binary: enc.encode("3") }],
  ),
  echoes(
    "masking keys of any value are accepted, zero included (RFC 6455 §5.3)",
    [text("zero", { mask: bytes(0, 0, 0, 0) }), text("ff", { mask: bytes(255, 255, 255, 255) })],
    [{ text: "zero" }, { text: "ff" }],
  ),
  fails(
    "unmasked client frame fails with 1002 (RFC 6455 §5.1)",
    [text("hi", { masked: false })],
    PROTOCOL_ERROR,
  ),
  fails(
    "64-bit length with the most significant bit set fails with 1002 (RFC 6455 §5.2)",
    [bytes(0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4)],
    PROTOCOL_ERROR,
  ),

  // ---- §5.5.2, §5.5.3 pings and pongs ----
  echoes("ping without payload gets an empty pong (RFC 6455 §5.5.2)", [f({ opcode: Op.PING })], [
    { pong: bytes() },
  ]),
  echoes(
    "ping with 125 bytes gets a pong with the same 125 bytes (RFC 6455 §5.5.2)",
    [f({ opcode: Op.PING, payload: pattern(125) })],
    [{ pong: pattern(125) }],
  ),
  echoes(
    "ping with binary payload gets it back unchanged (RFC 6455 §5.5.2)",
    [f({ opcode: Op.PING, payload: bytes(0, 0xff, 0xfe, 0x80) })],
    [{ pong: bytes(0, 0xff, 0xfe, 0x80) }],
  ),
  fails(
    "ping with 126 bytes fails with 1002 (RFC 6455 §5.5)",
    [f({ opcode: Op.PING, payload: pattern(126) })],
    PROTOCOL_ERROR,
  ),
  fails(
    "fragmented ping fails with 1002 (RFC 6455 §5.5)",
    [f({ opcode: Op.PING, payload: "a", fin: false })],
    PROTOCOL_ERROR,
  ),
  echoes(
    "unsolicited pong is ignored (RFC 6455 §5.5.3)",
    [f({ opcode: Op.PONG, payload: "unasked" }), text("after")],
    [{ text: "after" }],
  ),
  echoes(
    "ten pings in a row each get their pong, in order (RFC 6455 §5.5.2)",
    Array.from({ length: 10 }, (_, i) => f({ opcode: Op.PING, payload: `p${i}` })),
    Array.from({ length: 10 }, (_, i) => ({ pong: enc.encode(`p${i}`) })),
  ),

  // ---- §5.2 reserved bits ----
  ...[1, 2, 4, 7].map((rsv) =>
    fails(
      `text frame with RSV bits ${rsv} set fails with 1002 (RFC 6455 §5.2)`,
      [text("x", { rsv })],
      PROTOCOL_ERROR,
    )
  ),
  fails(
    "ping with RSV1 set fails with 1002 (RFC 6455 §5.2)",
    [f({ opcode: Op.PING, rsv: 4 })],
    PROTOCOL_ERROR,
  ),
  fails(
    "a valid message is echoed before a later frame with RSV bits fails (RFC 6455 §5.2)",
    [text("first"), text("second", { rsv: 2 }), text("never")],
    PROTOCOL_ERROR,
    [{ text: "first" }],
  ),

  // ---- §5.2 opcodes ----
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode) =>
    fails(
      `reserved opcode ${opcode} fails with 1002 (RFC 6455 §5.2)`,
      [f({ opcode, payload: "x" })],
      PROTOCOL_ERROR,
    )
  ),

  // ---- §5.4 fragmentation ----
  echoes(
    "text in three fragments is echoed as one message (RFC 6455 §5.4)",
    [
      text("frag", { fin: false }),
      f({ opcode: Op.CONT, payload: "men", fin: false }),
      f({ opcode: Op.CONT, payload: "ted" }),
    ],
    [{ text: "fragmented" }],
  ),
  echoes(
    "binary with empty fragments is echoed as one message (RFC 6455 §5.4)",
    [
      f({ opcode: Op.BINARY, fin: false }),
      f({ opcode: Op.CONT, payload: bytes(1, 2), fin: false }),
      f({ opcode: Op.CONT, fin: false }),
      f({ opcode: Op.CONT, payload: bytes(3) }),
    ],
    [{ binary: bytes(1, 2, 3) }],
  ),
  echoes(
    "a ping between fragments is answered at once (RFC 6455 §5.4, §5.5)",
    [
      text("a", { fin: false }),
      f({ opcode: Op.PING, payload: "mid" }),
      f({ opcode: Op.CONT, payload: "b" }),
    ],
    [{ pong: enc.encode("mid") }, { text: "ab" }],
  ),
  echoes(
    "a message in 1000 one-byte fragments is echoed whole (RFC 6455 §5.4)",
    [
      text("x", { fin: false }),
      ...Array.from({ length: 998 }, () => f({ opcode: Op.CONT, payload: "x", fin: false })),
      f({ opcode: Op.CONT, payload: "x" }),
    ],
    [{ text: ascii(1000) }],
  ),
  fails(
    "continuation without a message to continue fails with 1002 (RFC 6455 §5.4)",
    [f({ opcode: Op.CONT, payload: "x" })],
    PROTOCOL_ERROR,
  ),
  fails(
    "a new text message inside a fragmented one fails with 1002 (RFC 6455 §5.4)",
    [text("a", { fin: false }), text("b")],
    PROTOCOL_ERROR,
  ),
  fails(
    "a continuation after a finished message fails with 1002 (RFC 6455 §5.4)",
    [text("done"), f({ opcode: Op.CONT, payload: "more" })],
    PROTOCOL_ERROR,
    [{ text: "done" }],
  ),

  // ---- §8.1 UTF-8 ----
  echoes(
    "valid multi-byte UTF-8 text is echoed (RFC 6455 §8.1)",
    [text(kosme), text("\u{10FFFF}\u{1F600}\u0000")],
    [{ text: kosme }, { text: "\u{10FFFF}\u{1F600}\u0000" }],
  ),
  echoes(
    "UTF-8 split across fragments inside a character is accepted (RFC 6455 §5.4, §8.1)",
    [
      text(kosmeBytes.subarray(0, 3), { fin: false }),
      f({ opcode: Op.CONT, payload: kosmeBytes.subarray(3, 6), fin: false }),
      f({ opcode: Op.CONT, payload: kosmeBytes.subarray(6) }),
    ],
    [{ text: kosme }],
  ),
  ...invalidUtf8.map(([what, payload]) =>
    fails(
      `text with ${what} fails with 1007 (RFC 6455 §8.1)`,
      [text(payload)],
      INVALID_DATA,
    )
  ),
  fails(
    "invalid UTF-8 in a first fragment fails at once, before the message ends (RFC 6455 §8.1)",
    [text(bytes(0x61, 0xff, 0x62), { fin: false })],
    INVALID_DATA,
  ),
  fails(
    "invalid UTF-8 fails in the middle of a frame, before its payload ends (RFC 6455 §8.1)",
    [truncated(text(new Uint8Array([0x61, 0xc0, ...pattern(100)])), 10, 6)],
    INVALID_DATA,
  ),
  fails(
    "a character left incomplete at the last fragment fails with 1007 (RFC 6455 §8.1)",
    [text(kosmeBytes.subarray(0, 3), { fin: false }), f({ opcode: Op.CONT, payload: bytes() })],
    INVALID_DATA,
  ),
  echoes(
    "binary messages are not checked as UTF-8 (RFC 6455 §5.6)",
    [f({ opcode: Op.BINARY, payload: bytes(0xff, 0xc0, 0x80) })],
    [{ binary: bytes(0xff, 0xc0, 0x80) }],
  ),

  // ---- §5.5.1, §7.4 closing handshake ----
  {
    name: "close with 1000 is answered with 1000 and TCP closes (RFC 6455 §5.5.1)",
    send: [close(1000)],
    expect: [{ close: 1000 }],
    tcpCloses: true,
  },
  {
    name: "close without a body is answered with an empty close (RFC 6455 §5.5.1, §7.1.5)",
    send: [f({ opcode: Op.CLOSE })],
    expect: [{ close: 1005 }],
    tcpCloses: true,
  },
  ...validCloseCodes.concat([3000, 3999, 4000, 4999]).map((code) => ({
    name: `close with code ${code} is echoed (RFC 6455 §5.5.1, §7.4)`,
    send: [close(code, "bye")],
    expect: [{ close: code }],
    tcpCloses: true,
  })),
  ...invalidCloseCodes.map((code) =>
    fails(
      `close with code ${code} fails with 1002 (RFC 6455 §7.4.1, §7.4.2)`,
      [close(code)],
      PROTOCOL_ERROR,
    )
  ),
  fails(
    "close with a 1-byte body fails with 1002 (RFC 6455 §5.5.1)",
    [f({ opcode: Op.CLOSE, payload: bytes(3) })],
    PROTOCOL_ERROR,
  ),
  {
    name: "close with a 123-byte UTF-8 reason is accepted (RFC 6455 §5.5)",
    send: [close(1000, "é".repeat(61) + "x")],
    expect: [{ close: 1000 }],
    tcpCloses: true,
  },
  fails(
    "close with a reason that is not UTF-8 fails with 1007 (RFC 6455 §5.5.1, §8.1)",
    [close(1000, bytes(0xce, 0xba, 0xff))],
    INVALID_DATA,
  ),
  fails(
    "close with a 124-byte reason (126-byte payload) fails with 1002 (RFC 6455 §5.5)",
    [close(1000, ascii(124))],
    PROTOCOL_ERROR,
  ),
  {
    name: "frames after the client's close are ignored (RFC 6455 §5.5.1)",
    send: [close(1000), text("late"), f({ opcode: Op.PING, payload: "late" })],
    expect: [{ close: 1000 }],
    tcpCloses: true,
  },
  {
    name: "close between fragments ends the connection cleanly (RFC 6455 §5.4, §5.5.1)",
    send: [text("part", { fin: false }), close(1000)],
    expect: [{ close: 1000 }],
    tcpCloses: true,
  },

  // ---- §10.4 limits ----
  fails(
    "a frame declaring more than --max-message-size fails with 1009 from its header (RFC 6455 §10.4)",
    [
      truncated(
        f({ opcode: Op.BINARY, payload: new Uint8Array(MAX_MESSAGE_SIZE + 1) }),
        0,
        14,
      ),
    ],
    TOO_BIG,
  ),
  fails(
    "fragments adding up to more than --max-message-size fail with 1009 (RFC 6455 §10.4)",
    [
      f({ opcode: Op.BINARY, payload: new Uint8Array(MAX_MESSAGE_SIZE / 2), fin: false }),
      truncated(
        f({ opcode: Op.CONT, payload: new Uint8Array(MAX_MESSAGE_SIZE / 2 + 1) }),
        0,
        14,
      ),
    ],
    TOO_BIG,
  ),
  echoes(
    "a message of exactly --max-message-size is echoed (RFC 6455 §10.4)",
    [f({ opcode: Op.BINARY, payload: pattern(MAX_MESSAGE_SIZE) })],
    [{ binary: pattern(MAX_MESSAGE_SIZE) }],
  ),
];

/** The ping a runner sends after a case whose connection must stay open, and its pong. */
export const ALIVE_PING = clientFrame({ opcode: Op.PING, payload: "alive?" });
export const ALIVE_PONG: Reply = { pong: enc.encode("alive?") };

/** A short description of replies for failure messages (a diff of 1 MiB payloads is slow). */
export function describeReplies(replies: readonly Reply[]): string {
  const show = (b: Uint8Array | string) => {
    const s = typeof b === "string" ? JSON.stringify(b.slice(0, 24)) : `[${b.subarray(0, 12)}]`;
    return `${b.length} ${typeof b === "string" ? "chars" : "bytes"} ${s}${
      b.length > 24 ? "…" : ""
    }`;
  };
  return "[" +
    replies.map((r) =>
      "text" in r
        ? `text ${show(r.text)}`
        : "binary" in r
        ? `binary ${show(r.binary)}`
        : "pong" in r
        ? `pong ${show(r.pong)}`
        : `close ${r.close}`
    ).join(", ") + "]";
}

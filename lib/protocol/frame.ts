// Owns the RFC 6455 §5.2 base frame: opcodes, header parsing, header encoding and masking.

import { utf8Length } from "./utf8.ts";

/** Frame opcodes (RFC 6455 §5.2, §11.8). */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Control frames have the high bit of the opcode set (RFC 6455 §5.5). */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** Whether the opcode is one RFC 6455 defines; the others are reserved (§5.2). */
export function isKnownOpcode(opcode: number): boolean {
  return opcode <= Opcode.BINARY || (opcode >= Opcode.CLOSE && opcode <= Opcode.PONG);
}

/** Control frame payloads are at most 125 bytes (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;

const FIN_BIT = 0x80;
const RSV1_BIT = 0x40;
const RSV_MASK = 0x70;
const OPCODE_MASK = 0x0f;
const MASK_BIT = 0x80;
const LEN_MASK = 0x7f;
const LEN_16 = 126;
const LEN_64 = 127;
const MAX_HEADER = 14;

/** A parsed frame header. `mask` is null for unmasked frames. */
export interface FrameHeader {
  readonly fin: boolean;
  /** The three RSV bits as a number 0–7 (RSV1 is 4). */
  readonly rsv: number;
  readonly opcode: number;
  readonly mask: Uint8Array | null;
  readonly payloadLength: number;
  /** Bytes taken by the header itself (2 to 14). */
  readonly headerLength: number;
}

/** Returned when the header is not complete yet. */
export const NEED_DATA = Symbol("NEED_DATA");

/** A header that cannot be represented: the error is the peer's. */
export interface FrameHeaderError {
  readonly error: string;
  /**
   * True when the header is well-formed but announces more than 2^53 - 1 bytes: a size the
   * receiver cannot handle (close with 1009), rather than a protocol error (1002).
   */
  readonly tooLarge: boolean;
}

/** Where `parseFrameHeader` reads, and where it puts the mask. */
export interface ParseHeaderOptions {
  /** A 4-byte array the mask is copied into (it becomes the header's `mask`). */
  readonly maskInto?: Uint8Array;
  /** Where in `bytes` the header starts (default 0): parsing in place, with no view made. */
  readonly at?: number;
}

/**
 * Parses the frame header at the start of `bytes` (or at `options.at`).
 * Returns the header, NEED_DATA when more bytes are needed, or an error value.
 * The mask, when present, is a copy: written into `maskInto` (4 bytes) when given, which then
 * becomes the header's `mask`, else into a new array. Reusing one array spares an allocation
 * per frame, a large share of the cost of parsing a small frame; so does `at`, which spares the
 * view (`subarray`) a caller would otherwise make of the rest of its chunk.
 */
export function parseFrameHeader(
  bytes: Uint8Array,
  options: ParseHeaderOptions = {},
): FrameHeader | typeof NEED_DATA | FrameHeaderError {
  const at = options.at ?? 0;
  const available = bytes.length - at;
  if (available < 2) return NEED_DATA;
  const b0 = bytes[at], b1 = bytes[at + 1];
  const masked = (b1 & MASK_BIT) !== 0;
  let length = b1 & LEN_MASK;
  let pos = 2;
  if (length === LEN_16) {
    if (available < pos + 2) return NEED_DATA;
    length = (bytes[at + 2] << 8) | bytes[at + 3];
    pos += 2;
  } else if (length === LEN_64) {
    if (available < pos + 8) return NEED_DATA;
    const view = new DataView(bytes.buffer, bytes.byteOffset + at + pos, 8);
    const high = view.getUint32(0);
    // RFC 6455 §5.2: "the most significant bit MUST be 0".
    if (high & 0x80000000) {
      return { error: "64-bit payload length has its top bit set", tooLarge: false };
    }
    if (high > 0x1fffff) return { error: "payload length exceeds 2^53 - 1 bytes", tooLarge: true };
    length = high * 2 ** 32 + view.getUint32(4);
    pos += 8;
  }
  let mask: Uint8Array | null = null;
  if (masked) {
    if (available < pos + 4) return NEED_DATA;
    mask = options.maskInto ?? new Uint8Array(4);
    mask[0] = bytes[at + pos];
    mask[1] = bytes[at + pos + 1];
    mask[2] = bytes[at + pos + 2];
    mask[3] = bytes[at + pos + 3];
    pos += 4;
  }
  return {
    fin: (b0 & FIN_BIT) !== 0,
    rsv: (b0 & RSV_MASK) >> 4,
    opcode: b0 & OPCODE_MASK,
    mask,
    payloadLength: length,
    headerLength: pos,
  };
}

/** Options for encoding a frame header. */
export interface HeaderOptions {
  /** Defaults to true: the frame ends its message. */
  readonly fin?: boolean;
  /** A 4-byte masking key (clients must mask, RFC 6455 §5.3); servers send unmasked. */
  readonly mask?: Uint8Array;
  /**
   * Sets RSV1, which permessage-deflate uses to mark a compressed message on its first frame
   * (RFC 7692 §6). Only for a connection that negotiated it; defaults to false.
   */
  readonly rsv1?: boolean;
}

/** Encodes a frame header for a payload of `length` bytes. Returns a new array. */
export function encodeFrameHeader(
  opcode: number,
  length: number,
  options: HeaderOptions = {},
): Uint8Array {
  const fin = options.fin ?? true;
  const mask = options.mask;
  const extra = length < LEN_16 ? 0 : length <= 0xffff ? 2 : 8;
  const header = new Uint8Array(2 + extra + (mask ? 4 : 0));
  header[0] = (fin ? FIN_BIT : 0) | (options.rsv1 ? RSV1_BIT : 0) | opcode;
  const maskBit = mask ? MASK_BIT : 0;
  if (extra === 0) {
    header[1] = maskBit | length;
  } else if (extra === 2) {
    header[1] = maskBit | LEN_16;
    header[2] = length >>> 8;
    header[3] = length & 0xff;
  } else {
    header[1] = maskBit | LEN_64;
    const view = new DataView(header.buffer);
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  if (mask) header.set(mask, 2 + extra);
  return header;
}

/** Payloads up to this size are copied behind their header into one array. */
export const MERGE_LIMIT = 16 * 1024;

/**
 * Encodes one unmasked server frame. Small frames come back as one array (a copy);
 * larger ones as [header, payload], where payload is the caller's array, not a copy.
 */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array[] {
  const header = encodeFrameHeader(opcode, payload.length, { fin });
  if (payload.length > MERGE_LIMIT) return [header, payload];
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return [out];
}

const textEncoder = new TextEncoder();
/** Strings up to this many UTF-16 units are tried as ASCII, byte by byte in JS. */
const ASCII_FAST_LIMIT = 256;
/** Up to this many UTF-16 units, the UTF-8 form (at most 3 bytes each) fits MERGE_LIMIT. */
const DIRECT_TEXT_LIMIT = Math.floor(MERGE_LIMIT / 3);

/**
 * Encodes one unmasked server text frame, as `encodeFrame(Opcode.TEXT, utf8(text))` would,
 * but writes the UTF-8 straight behind the header: one allocation instead of two (or three).
 */
export function encodeTextFrame(text: string): Uint8Array[] {
  const n = text.length;
  if (n > DIRECT_TEXT_LIMIT) return encodeFrame(Opcode.TEXT, textEncoder.encode(text));
  if (n <= ASCII_FAST_LIMIT) {
    const head = n < LEN_16 ? 2 : 4;
    const out = new Uint8Array(head + n);
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      out[head + i] = c;
    }
    if (i === n) {
      writeTextHeader(out, 0, n);
      return [out];
    }
  }
  // Room for the longest UTF-8 form behind a 4-byte header (lengths here are < 2^16).
  const buf = new Uint8Array(4 + n * 3);
  const { written } = textEncoder.encodeInto(text, buf.subarray(4));
  const start = written < LEN_16 ? 2 : 0;
  writeTextHeader(buf, start, written);
  return [buf.subarray(start, 4 + written)];
}

/** The bytes of the unmasked frame `encodeTextFrame(text)` returns, counted without encoding. */
export function textFrameLength(text: string): number {
  const payload = utf8Length(text);
  const extra = payload < LEN_16 ? 0 : payload <= 0xffff ? 2 : 8;
  return 2 + extra + payload;
}

/** The most bytes `encodeTextFrameInto` may need for a text of `length` UTF-16 units. */
export function textFrameBound(length: number): number {
  return 4 + length * 3;
}

/**
 * Writes the same frame as `encodeTextFrame(text)` into `out` at `at`, which must have
 * `textFrameBound(text.length)` bytes free (and text at most DIRECT_TEXT_LIMIT units long).
 * Returns the frame's length. For callers that gather many small frames in one buffer.
 */
export function encodeTextFrameInto(text: string, out: Uint8Array, at: number): number {
  const n = text.length;
  if (n > DIRECT_TEXT_LIMIT) throw new RangeError("Cannot encode in place: the text is too long");
  if (n < LEN_16) {
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      out[at + 2 + i] = c;
    }
    if (i === n) {
      writeTextHeader(out, at, n);
      return 2 + n;
    }
  }
  const { written } = textEncoder.encodeInto(text, out.subarray(at + 4, at + textFrameBound(n)));
  if (written < LEN_16) {
    out.copyWithin(at + 2, at + 4, at + 4 + written);
    writeTextHeader(out, at, written);
    return 2 + written;
  }
  writeTextHeader(out, at, written);
  return 4 + written;
}

/** Writes a FIN text frame header for `length` (< 2^16) bytes at `at`. */
function writeTextHeader(out: Uint8Array, at: number, length: number): void {
  out[at] = FIN_BIT | Opcode.TEXT;
  if (length < LEN_16) {
    out[at + 1] = length;
  } else {
    out[at + 1] = LEN_16;
    out[at + 2] = length >>> 8;
    out[at + 3] = length & 0xff;
  }
}

/** The largest header `parseFrameHeader` can need. */
export const MAX_FRAME_HEADER = MAX_HEADER;

const WORD_THRESHOLD = 32;
const rotated = new Uint8Array(4);
const rotated32 = new Uint32Array(rotated.buffer);

/**
 * XORs `bytes` in place with `mask` (RFC 6455 §5.3), starting at mask position `phase`
 * (the count of payload bytes already masked). Works a 32-bit word at a time when long.
 */
export function applyMask(bytes: Uint8Array, mask: Uint8Array, phase = 0): void {
  const n = bytes.length;
  let i = 0;
  if (n >= WORD_THRESHOLD) {
    // Bytes up to the first 4-byte-aligned address, then whole words, then the tail.
    const lead = (4 - ((bytes.byteOffset) & 3)) & 3;
    for (; i < lead; i++) bytes[i] ^= mask[(phase + i) & 3];
    for (let k = 0; k < 4; k++) rotated[k] = mask[(phase + i + k) & 3];
    const key = rotated32[0];
    const words = (n - i) >>> 2;
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] ^= key;
    i += words * 4;
  }
  for (; i < n; i++) bytes[i] ^= mask[(phase + i) & 3];
}

// Owns compressing and inflating one whole message for permessage-deflate without context
// takeover (RFC 7692 §7.2): raw DEFLATE with a sync flush, the 00 00 ff ff tail, and the
// inflated-size bound that stops a zip bomb early. Synchronous, stateless: one call per message.

import {
  constants as zlibConstants,
  deflateRawSync,
  inflateRawSync,
  type ZlibOptions,
} from "node:zlib";
import { CloseCode } from "./close_codes.ts";
import { MAX_WINDOW_BITS } from "./permessage_deflate.ts";

/**
 * zlib level 3. Measured in bench/deflate_bench.ts (best of runs): a 4 KiB JSON message goes to
 * 24.7% of its size in ~19 µs, against 35.9% in ~9 µs at level 1 and 24.0% in ~21 µs at level 6;
 * at 64 KiB, 21.4% in ~230 µs against 20.3% in ~460 µs at level 6. A broadcast compresses once
 * for every connection, so bytes saved count more than microseconds, up to level 3.
 */
export const DEFAULT_COMPRESSION_LEVEL = 3;

/**
 * Messages shorter than this (in bytes) go out uncompressed. Without context takeover, an
 * 87-byte JSON message only shrinks to 87–92%, and a 256-byte one to 58%, for a fixed cost per
 * call (zlib sets up its state each time); from 512 bytes it shrinks to 42% or less.
 */
export const DEFAULT_COMPRESSION_THRESHOLD = 512;

/** RFC 7692 §7.2.1: a sync flush ends with an empty stored block, 00 00 ff ff, then removed. */
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** Largest maxOutputLength node:zlib accepts (2^53 - 1). */
const MAX_OUTPUT_LIMIT = Number.MAX_SAFE_INTEGER;

export interface CompressOptions {
  /** zlib level 0–9; DEFAULT_COMPRESSION_LEVEL when absent. */
  readonly level?: number;
  /** LZ77 window, 9–15 (DeflateParams.compressWindowBits); 15 when absent. */
  readonly windowBits?: number;
}

/**
 * Compresses one message payload (RFC 7692 §7.2.1): raw DEFLATE, sync-flushed, with the final
 * 00 00 ff ff removed. Returns a view of a new buffer. The empty message gives one 00 byte.
 */
export function compressMessage(payload: Uint8Array, options: CompressOptions = {}): Uint8Array {
  const out = deflateRawSync(payload, {
    level: options.level ?? DEFAULT_COMPRESSION_LEVEL,
    windowBits: options.windowBits ?? MAX_WINDOW_BITS,
    finishFlush: zlibConstants.Z_SYNC_FLUSH,
  });
  const n = out.length;
  if (
    n < TAIL.length || out[n - 4] !== TAIL[0] || out[n - 3] !== TAIL[1] ||
    out[n - 2] !== TAIL[2] || out[n - 1] !== TAIL[3]
  ) {
    // A sync flush always ends so; anything else is a bug of ours, not the peer's.
    throw new Error("Cannot compress message: the deflate output lacks the sync-flush tail");
  }
  return new Uint8Array(out.buffer, out.byteOffset, n - TAIL.length);
}

/** Why a compressed message was refused; each kind has its close code. */
export type InflateFailureKind = "message_too_big" | "invalid_compressed_data" | "invalid_utf8";

const FAILURE_CODE: Record<InflateFailureKind, number> = {
  message_too_big: CloseCode.MESSAGE_TOO_BIG,
  invalid_compressed_data: CloseCode.INVALID_PAYLOAD_DATA,
  invalid_utf8: CloseCode.INVALID_PAYLOAD_DATA,
};

export interface InflateFailure {
  readonly ok: false;
  readonly kind: InflateFailureKind;
  /** The close code to fail the connection with (1009 or 1007). */
  readonly code: number;
  readonly reason: string;
}

export interface InflateOptions {
  /** The most inflated bytes the message may have (--max-message-size); more fails with 1009. */
  readonly maxMessageSize: number;
}

/** The inflated bytes of a message: a new array, owned by the caller. */
export type InflateBytesResult = { readonly ok: true; readonly data: Uint8Array } | InflateFailure;
/** The inflated text of a message, checked as UTF-8. */
export type InflateTextResult = { readonly ok: true; readonly text: string } | InflateFailure;

/**
 * The most compressed bytes a message of up to `maxMessageSize` inflated bytes may take.
 * Deflate can expand incompressible data a little (zlib's deflateBound: about 0.03% plus a few
 * bytes), so a legitimate message at the size limit still fits. A codec checks this from each
 * frame header, before buffering a compressed fragment; the inflated size is checked at FIN.
 */
export function compressedSizeLimit(maxMessageSize: number): number {
  const slack = Math.floor(maxMessageSize / 4096) + Math.floor(maxMessageSize / 16384) + 64;
  return Math.min(maxMessageSize + slack, MAX_OUTPUT_LIMIT);
}

/**
 * Inflates one message from its compressed payload (RFC 7692 §7.2.2): the fragments' payloads
 * in order, with 00 00 ff ff appended. Inflation stops as soon as the output passes
 * `maxMessageSize`, so a zip bomb costs no more than the limit; that is "message_too_big".
 */
export function inflateMessage(
  compressed: Uint8Array | readonly Uint8Array[],
  options: InflateOptions,
): InflateBytesResult {
  const parts = compressed instanceof Uint8Array ? [compressed] : compressed;
  let total = TAIL.length;
  for (const p of parts) total += p.length;
  const input = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    input.set(p, at);
    at += p.length;
  }
  input.set(TAIL, at);
  const limit = options.maxMessageSize;
  const zlibOptions: ZlibOptions = {
    windowBits: MAX_WINDOW_BITS, // a 32 KiB window reads data made with any smaller window
    // The message ends at a sync-flush point, not at a final block.
    finishFlush: zlibConstants.Z_SYNC_FLUSH,
    maxOutputLength: Math.min(Math.max(limit, 1), MAX_OUTPUT_LIMIT),
  };
  let data: Uint8Array;
  try {
    data = inflateRawSync(input, zlibOptions);
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return tooBig(limit);
    return failure("invalid_compressed_data", `invalid compressed data: ${errorText(e)}`);
  }
  if (data.length > limit) return tooBig(limit);
  // A plain Uint8Array over zlib's Buffer, so callers see the type they asked for.
  return { ok: true, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Inflates a text message and checks its UTF-8 (RFC 6455 §8.1: invalid text fails with 1007).
 * The whole inflated message is at hand, so one fatal decode both checks and converts it; it
 * accepts exactly what utf8.ts's Utf8Validator accepts (tests/utf8_test.ts compares them).
 */
export function inflateText(
  compressed: Uint8Array | readonly Uint8Array[],
  options: InflateOptions,
): InflateTextResult {
  const result = inflateMessage(compressed, options);
  if (!result.ok) return result;
  try {
    return { ok: true, text: strictDecoder.decode(result.data) };
  } catch {
    return failure("invalid_utf8", "invalid UTF-8 in compressed text message");
  }
}

function tooBig(limit: number): InflateFailure {
  return failure("message_too_big", `inflated message over ${limit} bytes`);
}

function failure(kind: InflateFailureKind, reason: string): InflateFailure {
  return { ok: false, kind, code: FAILURE_CODE[kind], reason };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

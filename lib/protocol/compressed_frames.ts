// Owns framing a compressed message (RFC 7692 §6: RSV1 on the first frame) and the broadcast's
// "encode once" rule with compression: each message is compressed at most once per window size
// and framed at most once per form, and the same bytes go to every connection of that form.

import {
  compressMessage,
  type CompressOptions,
  DEFAULT_COMPRESSION_LEVEL,
  DEFAULT_COMPRESSION_THRESHOLD,
} from "./deflate.ts";
import { encodeFrameHeader, encodeTextFrame, MERGE_LIMIT, Opcode } from "./frame.ts";
import type { DeflateParams } from "./permessage_deflate.ts";

const encoder = new TextEncoder();
const MAX_UTF8_PER_UNIT = 3;

/**
 * One unmasked server frame (FIN, RSV1 set) carrying `compressed`, the output of
 * `compressMessage`. Like `encodeFrame`: one array (a copy) when small, else [header, payload]
 * with the caller's payload.
 */
export function encodeCompressedFrame(opcode: number, compressed: Uint8Array): Uint8Array[] {
  // RFC 7692 §6: "the "Per-Message Compressed" bit" is RSV1 of the first frame of the message.
  const header = encodeFrameHeader(opcode, compressed.length, { rsv1: true });
  if (compressed.length > MERGE_LIMIT) return [header, compressed];
  const out = new Uint8Array(header.length + compressed.length);
  out.set(header);
  out.set(compressed, header.length);
  return [out];
}

export interface CompressionSettings {
  /** Messages under this many bytes go out plain; DEFAULT_COMPRESSION_THRESHOLD when absent. */
  readonly threshold?: number;
  /** zlib level; DEFAULT_COMPRESSION_LEVEL when absent. */
  readonly level?: number;
}

/**
 * The frames of one outgoing text message in every form it is needed in, each made on first
 * use and then shared. `forConnection(params)` gives the bytes for a connection with those
 * negotiated parameters (null: none). A message below the threshold, or one that deflate does
 * not shrink, goes out plain to everyone.
 */
export class TextMessageFrames {
  readonly #text: string;
  readonly #threshold: number;
  readonly #level: number;
  #bytes: Uint8Array | null = null;
  #plain: Uint8Array[] | null = null;
  /** Compressed frames by window bits; null where compression did not pay. */
  readonly #compressed = new Map<number, Uint8Array[] | null>();
  #compressions = 0;

  constructor(text: string, settings: CompressionSettings = {}) {
    this.#text = text;
    this.#threshold = settings.threshold ?? DEFAULT_COMPRESSION_THRESHOLD;
    this.#level = settings.level ?? DEFAULT_COMPRESSION_LEVEL;
  }

  /** The plain frame (encodeTextFrame), made once. */
  plain(): Uint8Array[] {
    return this.#plain ??= encodeTextFrame(this.#text);
  }

  /**
   * The compressed frame for a window of `windowBits` (9–15), made once per window size, or
   * null when the message is below the threshold or does not shrink.
   */
  compressed(windowBits: number): Uint8Array[] | null {
    const cached = this.#compressed.get(windowBits);
    if (cached !== undefined) return cached;
    let frames: Uint8Array[] | null = null;
    // A UTF-16 unit takes at most 3 UTF-8 bytes: a text under a third of the threshold in units
    // is under it in bytes too, and is not encoded here.
    if (this.#text.length * MAX_UTF8_PER_UNIT >= this.#threshold) {
      const bytes = this.#bytes ??= encoder.encode(this.#text);
      if (bytes.length >= this.#threshold) {
        const options: CompressOptions = { level: this.#level, windowBits };
        const payload = compressMessage(bytes, options);
        this.#compressions++;
        if (payload.length < bytes.length) frames = encodeCompressedFrame(Opcode.TEXT, payload);
      }
    }
    this.#compressed.set(windowBits, frames);
    return frames;
  }

  /** The frames for one connection: compressed when it negotiated deflate and it pays. */
  forConnection(params: DeflateParams | null): Uint8Array[] {
    const bits = params?.compressWindowBits ?? null;
    return (bits === null ? null : this.compressed(bits)) ?? this.plain();
  }

  /** How many times this message was run through deflate (for counters and tests). */
  get compressions(): number {
    return this.#compressions;
  }
}

// Owns framing a compressed message (RFC 7692 §6: RSV1 on the first frame) and the broadcast's
// "encode once" rule with compression: each message is compressed at most once per window size
// and framed at most once per form, and the same bytes go to every connection of that form.

import {
  compressMessage,
  type CompressOptions,
  DEFAULT_COMPRESSION_LEVEL,
  DEFAULT_COMPRESSION_THRESHOLD,
} from "./deflate.ts";
import { encodeFrame, encodeFrameHeader, encodeTextFrame, MERGE_LIMIT, Opcode } from "./frame.ts";
import { concatBytes } from "./bytes.ts";
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
 * The frames of one outgoing message (text or binary) in every form it is needed in, each made
 * on first use and then shared. `forConnection(params)` gives the bytes for a connection with
 * those negotiated parameters (null: none). A message below the threshold, or one that deflate
 * does not shrink, goes out plain to everyone.
 */
export class MessageFrames {
  readonly #message: string | Uint8Array;
  readonly #threshold: number;
  readonly #level: number;
  #bytes: Uint8Array | null = null;
  #plain: Uint8Array[] | null = null;
  /** Compressed frames by window bits; null where compression did not pay. */
  readonly #compressed = new Map<number, Uint8Array[] | null>();
  #compressions = 0;

  /** A binary `message` is kept by reference: leave it unchanged until sent. */
  constructor(message: string | Uint8Array, settings: CompressionSettings = {}) {
    this.#message = message;
    this.#threshold = settings.threshold ?? DEFAULT_COMPRESSION_THRESHOLD;
    this.#level = settings.level ?? DEFAULT_COMPRESSION_LEVEL;
  }

  /** The plain frame (encodeTextFrame or encodeFrame), made once. */
  plain(): Uint8Array[] {
    const m = this.#message;
    return this.#plain ??= typeof m === "string"
      ? encodeTextFrame(m)
      : encodeFrame(Opcode.BINARY, m);
  }

  /**
   * The compressed frame for a window of `windowBits` (9–15), made once per window size, or
   * null when the message is below the threshold or does not shrink.
   */
  compressed(windowBits: number): Uint8Array[] | null {
    const cached = this.#compressed.get(windowBits);
    if (cached !== undefined) return cached;
    let frames: Uint8Array[] | null = null;
    const m = this.#message;
    // A UTF-16 unit takes at most 3 UTF-8 bytes: a text under a third of the threshold in units
    // is under it in bytes too, and is not encoded here.
    if (typeof m !== "string" || m.length * MAX_UTF8_PER_UNIT >= this.#threshold) {
      const bytes = this.#bytes ??= typeof m === "string" ? encoder.encode(m) : m;
      if (bytes.length >= this.#threshold) {
        const options: CompressOptions = { level: this.#level, windowBits };
        const payload = compressMessage(bytes, options);
        this.#compressions++;
        if (payload.length < bytes.length) {
          frames = encodeCompressedFrame(
            typeof m === "string" ? Opcode.TEXT : Opcode.BINARY,
            payload,
          );
        }
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

/** What a broadcast sends, in the forms connections need: plain, or compressed per window. */
export interface BroadcastForms {
  /** Whole plain frames, made on the first call and the same array after. */
  plain(): readonly Uint8Array[];
  /**
   * Whole frames for connections that compress with a window of `windowBits`, made on the
   * first call per window; null when nothing in them is compressed (send those the plain form).
   */
  compressed(windowBits: number): readonly Uint8Array[] | null;
}

export interface BroadcastSettings extends CompressionSettings {
  /** A form of at most this many bytes is joined into one buffer; larger keeps its frames apart. */
  readonly joinLimit?: number;
}

/**
 * Several messages broadcast together (one FIFO read, or one message), in each form framed once:
 * every message is compressed at most once per window size, and each form's frames are joined
 * into one buffer up to `joinLimit`, so one enqueue and one write serve each connection.
 */
export class BroadcastFrames implements BroadcastForms {
  readonly #messages: readonly MessageFrames[];
  readonly #joinLimit: number;
  #plain: readonly Uint8Array[] | null = null;
  readonly #compressed = new Map<number, readonly Uint8Array[] | null>();

  constructor(messages: readonly (string | Uint8Array)[], settings: BroadcastSettings = {}) {
    this.#messages = messages.map((m) => new MessageFrames(m, settings));
    this.#joinLimit = settings.joinLimit ?? 0;
  }

  plain(): readonly Uint8Array[] {
    return this.#plain ??= this.#join((m) => m.plain());
  }

  compressed(windowBits: number): readonly Uint8Array[] | null {
    const cached = this.#compressed.get(windowBits);
    if (cached !== undefined) return cached;
    let any = false;
    for (const m of this.#messages) if (m.compressed(windowBits) !== null) any = true;
    const frames = any ? this.#join((m) => m.compressed(windowBits) ?? m.plain()) : null;
    this.#compressed.set(windowBits, frames);
    return frames;
  }

  /** How many messages were run through deflate, all windows counted. */
  get compressions(): number {
    let n = 0;
    for (const m of this.#messages) n += m.compressions;
    return n;
  }

  #join(form: (m: MessageFrames) => readonly Uint8Array[]): readonly Uint8Array[] {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const m of this.#messages) {
      for (const p of form(m)) {
        parts.push(p);
        total += p.length;
      }
    }
    return total <= this.#joinLimit ? [concatBytes(parts, total)] : parts;
  }
}

// Owns the WebSocket connection state machine (RFC 6455 §5–§7): bytes in, events and bytes out,
// with permessage-deflate (RFC 7692) when negotiated. Sans-I/O: no sockets, timers, clock or
// randomness. Every frame the connection sends passes through it, and its events are pulled one
// at a time, so output keeps its order by construction.

import { CloseCode, isValidCloseCode } from "./close_codes.ts";
import { type Failure, failure, type FailureKind } from "./failures.ts";
import {
  applyMask,
  encodeFrame,
  encodeFrameHeader,
  encodeTextFrame,
  type FrameHeader,
  isControlOpcode,
  isKnownOpcode,
  MAX_CONTROL_PAYLOAD,
  MAX_FRAME_HEADER,
  NEED_DATA,
  Opcode,
  parseFrameHeader,
} from "./frame.ts";
import { isValidUtf8, Utf8Validator } from "./utf8.ts";
import {
  compressedSizeLimit,
  compressMessage,
  DEFAULT_COMPRESSION_LEVEL,
  DEFAULT_COMPRESSION_THRESHOLD,
  type InflateFailure,
  type InflateFailureKind,
  inflateMessage,
  inflateText,
} from "./deflate.ts";
import { type CompressionSettings, encodeCompressedFrame } from "./compressed_frames.ts";
import type { DeflateParams } from "./permessage_deflate.ts";

/** What the codec reports to its owner, pulled with `nextEvent()`. */
export type CodecEvent =
  | { readonly type: "text"; readonly data: string }
  /** `data` is a copy owned by the receiver. */
  | { readonly type: "binary"; readonly data: Uint8Array }
  /** The pong is already queued (RFC 6455 §5.5.2). `data` is a copy. */
  | { readonly type: "ping"; readonly data: Uint8Array }
  | { readonly type: "pong"; readonly data: Uint8Array }
  /** The peer's Close (1005 when it carried no code), or 1006 when TCP ended without one. */
  | { readonly type: "close"; readonly code: number; readonly reason: string }
  /** We failed the connection (RFC 6455 §7.1.7); the Close frame with `code` is queued. */
  | {
    readonly type: "fail";
    readonly kind: FailureKind;
    readonly code: number;
    readonly reason: string;
  };

/** OPEN: data flows. CLOSING: our Close is sent, the peer's is awaited. CLOSED: done. */
export type CodecState = "open" | "closing" | "closed";

/**
 * Where a codec puts the frames it sends, in order: whole frames only, so the owner's queue
 * always knows where each frame starts and ends. Returns false when the frames were refused
 * (the owner may then fail the codec, e.g. as a slow consumer).
 */
/** Frames encoded once by the caller and shared by many connections (a broadcast). */
export interface EncodedFrames {
  /** Whole data frames, as `encodeFrame` returns them. */
  readonly parts: readonly Uint8Array[];
  /**
   * True when some frame has RSV1 set (a compressed message, RFC 7692 §6): only a connection
   * that negotiated permessage-deflate may be sent these.
   */
  readonly compressed?: boolean;
}

export interface OutputSink {
  /** One or more whole frames, as `encodeFrame` returns them (header and payload may be apart). */
  frames(parts: readonly Uint8Array[], control: boolean): boolean;
  /** One text message to frame and queue; lets the owner frame small texts into a batch. */
  text?(text: string): boolean;
  /** Frames encoded once for many connections; the sink gets back the object it was given. */
  encoded?(frames: EncodedFrames): boolean;
}

export interface CodecOptions {
  /** "server" requires masked input and sends unmasked frames; "client" the reverse. */
  readonly role?: "server" | "client";
  /** Largest message in bytes, counted across fragments; larger fails with 1009. */
  readonly maxMessageSize?: number;
  /** Most frames one message may take; more fails with 1009. Defaults from maxMessageSize. */
  readonly maxFragments?: number;
  /** Client role only: returns a fresh 4-byte masking key for each frame (RFC 6455 §5.3). */
  readonly maskKey?: () => Uint8Array;
  /** Server role only: where sent frames go. Without one, `takeOutput()` drains them. */
  readonly sink?: OutputSink;
  /**
   * permessage-deflate as agreed in the handshake (`negotiateDeflate`), or null/absent: off.
   * A server codec then reads and sends compressed messages; a client codec only reads them.
   */
  readonly deflate?: DeflateParams | null;
  /** Threshold and level for the messages this codec compresses itself (`sendText`/`sendBinary`). */
  readonly compression?: CompressionSettings;
  /** Incremented once per message this codec runs through deflate (e.g. the server's stats). */
  readonly compressionCounter?: CompressionCounter;
}

/** Where a codec counts the messages it compressed. */
export interface CompressionCounter {
  compressions: number;
}

/** RSV1 as `FrameHeader.rsv` holds it (RSV1 RSV2 RSV3 → 4 2 1): RFC 7692 §6's "compressed" bit. */
const RSV1 = 4;
/** A UTF-16 unit takes at most 3 UTF-8 bytes: a shorter text is under the threshold unencoded. */
const MAX_UTF8_PER_UNIT = 3;

/** The failure kind for each way inflating a message fails (RFC 7692 §8, RFC 6455 §8.1). */
const INFLATE_FAILURE: Record<InflateFailureKind, FailureKind> = {
  message_too_big: "message-too-big",
  invalid_compressed_data: "invalid-compressed-data",
  invalid_utf8: "invalid-utf8",
};

export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
/**
 * The fragment cap allows a maximum-size message in fragments of this many bytes on average
 * (Autobahn 9.3/9.4 send 4 MiB in 64-byte fragments, plus an empty last one). The message
 * size is the real bound; the cap only stops endless empty fragments.
 */
export const MIN_AVERAGE_FRAGMENT = 16;
const MIN_FRAGMENT_CAP = 65536;

/** The default fragment cap for a message-size limit. */
export function defaultMaxFragments(maxMessageSize: number): number {
  return Math.max(MIN_FRAGMENT_CAP, Math.ceil(maxMessageSize / MIN_AVERAGE_FRAGMENT) + 1);
}

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
// STYLE: text is data. A leading U+FEFF is part of the message: ignoreBOM keeps it.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/**
 * A whole text message up to this many bytes is checked by isValidUtf8 and decoded by the
 * non-fatal decoder (the same string, for valid UTF-8): 64 B of ASCII cost ~140 ns, against
 * ~280 ns through the fatal decoder, whose fixed cost is higher. From about 512 B of mixed text
 * on, the fatal decoder's own validation is the faster.
 */
const SMALL_TEXT = 256;
/** A fragmented message's buffer starts this small and doubles as bytes actually arrive. */
const FIRST_MESSAGE_CAPACITY = 4096;

/** The connection state machine for one WebSocket, either role. */
export class Codec {
  readonly #server: boolean;
  readonly #maxMessage: number;
  readonly #maxFragments: number;
  readonly #maskKey?: () => Uint8Array;
  readonly #sink: OutputSink;
  readonly #deflate: DeflateParams | null;
  /** The window this codec compresses with, or null: it sends everything plain. */
  readonly #compressWindow: number | null;
  readonly #compressThreshold: number;
  readonly #compressLevel: number;
  readonly #counter: CompressionCounter | null;
  /** The most compressed bytes one message may take (its inflated size is checked at FIN). */
  readonly #maxCompressed: number;

  #state: CodecState = "open";
  #closeExpected = false;
  #closeSent = false;
  #closeReceived = false;
  #failure: Failure | null = null;
  /**
   * Events produced by the frame just parsed, not yet pulled: the next one, and any after it
   * (rarely any; a slot rather than a queue, since an array's `shift()` costs ~50 ns).
   */
  #next: CodecEvent | null = null;
  readonly #later: CodecEvent[] = [];
  #output: Uint8Array[] = [];

  // Input not yet parsed: a view of what `receive` was given, from #pos on.
  #input: Uint8Array = EMPTY;
  #pos = 0;
  #eof = false;

  // Frame being read.
  #header: FrameHeader | null = null;
  /** Holds a header split across chunks; allocated the first time one is. */
  #headerBytes: Uint8Array | null = null;
  #headerHeld = 0;
  #mask: Uint8Array | null = null;
  #payloadDone = 0;
  #control: Uint8Array | null = null;

  // Message being assembled (possibly across fragments).
  #msgOpcode = -1;
  #msg: Uint8Array | null = null;
  #msgLen = 0;
  #fragments = 0;
  /** The message being read had RSV1 on its first frame: it is inflated at FIN (RFC 7692 §6.2). */
  #compressed = false;
  /** For text that spans chunks; allocated the first time one does. */
  #utf8: Utf8Validator | null = null;

  constructor(options: CodecOptions = {}) {
    this.#server = (options.role ?? "server") === "server";
    this.#maxMessage = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxFragments = options.maxFragments ?? defaultMaxFragments(this.#maxMessage);
    this.#maskKey = options.maskKey;
    this.#deflate = options.deflate ?? null;
    // A client codec reads compressed messages but sends plain ones (it has no masked form).
    this.#compressWindow = this.#server ? this.#deflate?.compressWindowBits ?? null : null;
    this.#compressThreshold = options.compression?.threshold ?? DEFAULT_COMPRESSION_THRESHOLD;
    this.#compressLevel = options.compression?.level ?? DEFAULT_COMPRESSION_LEVEL;
    this.#counter = options.compressionCounter ?? null;
    this.#maxCompressed = compressedSizeLimit(this.#maxMessage);
    if (!this.#server && !this.#maskKey) throw new TypeError("A client codec needs maskKey");
    if (!this.#server && options.sink) throw new TypeError("Only a server codec takes a sink");
    this.#sink = options.sink ?? {
      frames: (parts) => {
        for (const p of parts) this.#output.push(p);
        return true;
      },
    };
  }

  get state(): CodecState {
    return this.#state;
  }

  /** True once the TCP connection should be closed (after sending what is queued). */
  get closeExpected(): boolean {
    return this.#closeExpected;
  }

  /** Why we failed the connection, or null. */
  get failure(): Failure | null {
    return this.#failure;
  }

  /** True once Close frames went both ways (RFC 6455 §7.1.1: the server then closes TCP first). */
  get closedCleanly(): boolean {
    return this.#closeSent && this.#closeReceived && this.#failure === null;
  }

  /**
   * Feeds bytes from the peer; nothing is parsed until `nextEvent()` is called. The codec keeps
   * a view of `data` (and may unmask it in place) until `nextEvent()` returns null: only then may
   * the caller reuse the buffer. Bytes fed before that are joined to the rest (a copy).
   */
  receive(data: Uint8Array): void {
    if (!this.#accepting() || data.length === 0) return;
    if (this.#pos < this.#input.length) {
      const rest = this.#input.subarray(this.#pos);
      const joined = new Uint8Array(rest.length + data.length);
      joined.set(rest);
      joined.set(data, rest.length);
      this.#input = joined;
    } else {
      this.#input = data;
    }
    this.#pos = 0;
  }

  /**
   * The peer closed TCP. Input already fed is still parsed first; after it, without a Close
   * frame, that is an abnormal closure (1006).
   */
  receiveEof(): void {
    this.#eof = true;
  }

  /**
   * Parses input until the next event, and returns it; null when all input is parsed. Frames the
   * codec answers by itself (a pong, the Close echo, a failure's Close) are sent while parsing,
   * so whatever the caller sends in reply to one event goes out before the codec's answer to
   * the next: replies to messages read ahead of a fatal frame precede its Close.
   */
  nextEvent(): CodecEvent | null {
    while (this.#next === null) {
      if (!this.#parseSome()) break;
    }
    const event = this.#next;
    if (event !== null) {
      this.#next = this.#later.length > 0 ? this.#later.shift()! : null;
      return event;
    }
    if (this.#eof && this.#state !== "closed") {
      // RFC 6455 §7.1.5: TCP closed without a Close frame: "1006".
      this.#state = "closed";
      this.#closeExpected = true;
      return { type: "close", code: CloseCode.ABNORMAL_CLOSURE, reason: "" };
    }
    return null;
  }

  /** Pulls every event the input holds (for tests and simple callers). */
  takeEvents(): CodecEvent[] {
    const events: CodecEvent[] = [];
    for (let e = this.nextEvent(); e !== null; e = this.nextEvent()) events.push(e);
    return events;
  }

  /** Drains the bytes to write to the peer, in order (only without a sink). */
  takeOutput(): Uint8Array[] {
    const out = this.#output;
    if (out.length) this.#output = [];
    return out;
  }

  /**
   * Sends a text message; false when not open (or the sink refused it). With permessage-deflate
   * a text of at least the threshold's bytes goes out compressed, if that makes it smaller.
   */
  sendText(text: string): boolean {
    if (this.#state !== "open") return false;
    if (
      this.#compressWindow !== null && text.length * MAX_UTF8_PER_UNIT >= this.#compressThreshold
    ) {
      const bytes = encoder.encode(text);
      if (bytes.length >= this.#compressThreshold) return this.#send(Opcode.TEXT, bytes);
    }
    if (this.#server) {
      return this.#sink.text
        ? this.#sink.text(text)
        : this.#sink.frames(encodeTextFrame(text), false);
    }
    return this.#queue(Opcode.TEXT, encoder.encode(text));
  }

  /**
   * Sends a binary message; false when not open. A server codec queues a payload over
   * MERGE_LIMIT by reference (header and payload go out apart): leave it unchanged until sent.
   */
  sendBinary(data: Uint8Array): boolean {
    if (this.#state !== "open") return false;
    return this.#send(Opcode.BINARY, data);
  }

  /**
   * Sends data frames already encoded by the caller, as a broadcast does: framed once, the same
   * bytes for every connection (not copied). Server role; false when not open.
   */
  sendEncoded(frames: EncodedFrames): boolean {
    if (!this.#server) throw new TypeError("Only a server codec sends pre-encoded frames");
    // RFC 7692 §6: RSV1 means "compressed" only where the extension was negotiated.
    if (frames.compressed && this.#compressWindow === null) {
      throw new TypeError("Cannot send compressed frames: permessage-deflate is not in use");
    }
    if (this.#state !== "open") return false;
    return this.#sink.encoded ? this.#sink.encoded(frames) : this.#sink.frames(frames.parts, false);
  }

  /** Sends a ping (payload at most 125 bytes); false when not open. */
  sendPing(data: Uint8Array = EMPTY): boolean {
    checkControl(data);
    if (this.#state !== "open") return false;
    return this.#queue(Opcode.PING, data);
  }

  /** Sends an unsolicited pong (payload at most 125 bytes); false when not open. */
  sendPong(data: Uint8Array = EMPTY): boolean {
    checkControl(data);
    if (this.#state !== "open") return false;
    return this.#queue(Opcode.PONG, data);
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2). A no-op unless open.
   * Throws on a code that may not be sent or a reason longer than 123 bytes (API misuse).
   */
  close(code: number = CloseCode.NORMAL_CLOSURE, reason = ""): void {
    if (!isValidCloseCode(code)) throw new RangeError(`Cannot close with code ${code}`);
    const payload = closePayload(code, reason);
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError("Cannot close: the reason is longer than 123 bytes");
    }
    if (this.#state !== "open") return;
    this.#state = "closing";
    this.#sendClose(payload);
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): sends a Close with the kind's code (unless one was
   * sent already: only one Close ever goes out, §5.5.1), records why, reports a `fail` event and
   * discards all further input. The TCP connection should close once output is sent.
   */
  fail(kind: FailureKind, detail?: string): void {
    if (this.#failure !== null || this.#state === "closed") return;
    const f = failure(kind, detail);
    this.#failure = f;
    const wasOpen = this.#state === "open";
    this.#state = "closed";
    this.#closeExpected = true;
    this.#msg = null;
    this.#control = null;
    this.#header = null;
    this.#input = EMPTY;
    this.#pos = 0;
    // The reason tells the peer what went wrong; an internal error's text is empty (STYLE 4).
    if (wasOpen) this.#sendClose(closePayload(f.code, truncateUtf8(f.reason, MAX_CLOSE_REASON)));
    this.#emit({ type: "fail", kind: f.kind, code: f.code, reason: f.reason });
  }

  /** Queues an event for `nextEvent()`, after any not yet pulled. */
  #emit(event: CodecEvent): void {
    if (this.#next === null) this.#next = event;
    else this.#later.push(event);
  }

  #sendClose(payload: Uint8Array): void {
    this.#closeSent = true;
    this.#queue(Opcode.CLOSE, payload);
  }

  #accepting(): boolean {
    return this.#failure === null && this.#state !== "closed";
  }

  /** Parses from the input; returns false when nothing more can be parsed now. */
  #parseSome(): boolean {
    const data = this.#input;
    if (this.#pos >= data.length || !this.#accepting()) return false;
    if (this.#header === null) {
      const used = this.#readHeader(data, this.#pos);
      if (used < 0) {
        this.#pos = data.length;
        return false;
      }
      this.#pos += used;
    } else {
      this.#pos += this.#readPayload(data, this.#pos);
    }
    if (this.#pos >= data.length) {
      this.#input = EMPTY;
      this.#pos = 0;
    }
    return true;
  }

  /**
   * Sends a data message: compressed when permessage-deflate is in use, the payload is at least
   * the threshold, and deflate makes it smaller (RFC 7692 §6: RSV1 is set per message).
   */
  #send(opcode: number, payload: Uint8Array): boolean {
    const bits = this.#compressWindow;
    if (bits !== null && payload.length >= this.#compressThreshold) {
      const compressed = compressMessage(payload, { level: this.#compressLevel, windowBits: bits });
      if (this.#counter) this.#counter.compressions++;
      if (compressed.length < payload.length) {
        return this.#sink.frames(encodeCompressedFrame(opcode, compressed), false);
      }
    }
    return this.#queue(opcode, payload);
  }

  #queue(opcode: number, payload: Uint8Array): boolean {
    const control = isControlOpcode(opcode);
    if (this.#server) return this.#sink.frames(encodeFrame(opcode, payload), control);
    const mask = this.#maskKey!();
    const masked = payload.slice();
    applyMask(masked, mask);
    return this.#sink.frames([encodeFrameHeader(opcode, masked.length, { mask }), masked], control);
  }

  /** Returns the bytes of `data` used for a header, or -1 when all were held for later. */
  #readHeader(data: Uint8Array, pos: number): number {
    let result;
    let used: number;
    if (this.#headerHeld === 0) {
      result = parseFrameHeader(data, { maskInto: this.#maskBytes(), at: pos });
      if (result === NEED_DATA) {
        (this.#headerBytes ??= new Uint8Array(MAX_FRAME_HEADER)).set(data.subarray(pos));
        this.#headerHeld = data.length - pos;
        return -1;
      }
      used = "error" in result ? 0 : result.headerLength;
    } else {
      const take = Math.min(MAX_FRAME_HEADER - this.#headerHeld, data.length - pos);
      const held = this.#headerHeld;
      const bytes = this.#headerBytes!;
      bytes.set(data.subarray(pos, pos + take), held);
      result = parseFrameHeader(bytes.subarray(0, held + take), { maskInto: this.#maskBytes() });
      if (result === NEED_DATA) {
        this.#headerHeld += take;
        return -1;
      }
      this.#headerHeld = 0;
      used = "error" in result ? 0 : result.headerLength - held;
    }
    if ("error" in result) {
      this.fail(result.tooLarge ? "length-too-large" : "length-top-bit");
      return 0;
    }
    this.#startFrame(result);
    return used;
  }

  /**
   * The array every parsed header's mask is copied into. One frame is read at a time, and its
   * header (with the mask) is dropped before the next is parsed.
   */
  #maskBytes(): Uint8Array {
    return this.#mask ??= new Uint8Array(4);
  }

  #startFrame(h: FrameHeader): void {
    const broken = this.#frameRuleBroken(h);
    if (broken) {
      this.fail(broken.kind, broken.detail);
      return;
    }
    this.#header = h;
    this.#payloadDone = 0;
    if (isControlOpcode(h.opcode)) {
      this.#control = h.payloadLength ? new Uint8Array(h.payloadLength) : EMPTY;
    } else {
      this.#startDataFrame(h);
    }
    if (h.payloadLength === 0) this.#endFrame();
  }

  /** Checks the header against RFC 6455 before any payload is read or buffered. */
  #frameRuleBroken(h: FrameHeader): { kind: FailureKind; detail?: string } | null {
    // RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated". RFC 7692 §6:
    // permessage-deflate sets RSV1 on the first frame of a data message only; §6.1: a control
    // frame or a continuation frame with RSV1 set is an error.
    if (h.rsv !== 0) {
      const first = h.opcode === Opcode.TEXT || h.opcode === Opcode.BINARY;
      if (h.rsv !== RSV1 || this.#deflate === null || !first) {
        return {
          kind: "reserved-bits",
          detail: h.rsv === RSV1 && this.#deflate !== null
            ? `RSV1 set on a ${
              first ? "data" : isControlOpcode(h.opcode) ? "control" : "continuation"
            } frame`
            : undefined,
        };
      }
    }
    // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail_".
    if (!isKnownOpcode(h.opcode)) {
      return { kind: "reserved-opcode", detail: `reserved opcode ${h.opcode}` };
    }
    // RFC 6455 §5.1: a server MUST close on an unmasked frame; a client on a masked one.
    if (this.#server && h.mask === null) return { kind: "unmasked-frame" };
    if (!this.#server && h.mask !== null) return { kind: "masked-frame" };
    if (isControlOpcode(h.opcode)) {
      // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less
      // and MUST NOT be fragmented."
      if (!h.fin) return { kind: "fragmented-control" };
      if (h.payloadLength > MAX_CONTROL_PAYLOAD) return { kind: "control-too-long" };
      return null;
    }
    // RFC 6455 §5.4: fragments of one message are not interleaved with another message.
    if (h.opcode === Opcode.CONTINUATION && this.#msgOpcode < 0) {
      return { kind: "orphan-continuation" };
    }
    if (h.opcode !== Opcode.CONTINUATION && this.#msgOpcode >= 0) {
      return { kind: "interleaved-message" };
    }
    // STYLE rule 6: limits are checked from the header, before anything is allocated. A
    // compressed message is bounded here on its compressed bytes, and on its inflated bytes at
    // FIN (inflation stops at the limit).
    const continuing = h.opcode === Opcode.CONTINUATION;
    const sofar = continuing ? this.#msgLen : 0;
    const compressed = continuing ? this.#compressed : h.rsv === RSV1;
    if (sofar + h.payloadLength > (compressed ? this.#maxCompressed : this.#maxMessage)) {
      return { kind: "message-too-big", detail: `message over ${this.#maxMessage} bytes` };
    }
    const fragments = h.opcode === Opcode.CONTINUATION ? this.#fragments : 0;
    if (fragments + 1 > this.#maxFragments) {
      return { kind: "too-many-fragments", detail: `message in over ${this.#maxFragments} frames` };
    }
    return null;
  }

  #startDataFrame(h: FrameHeader): void {
    if (h.opcode !== Opcode.CONTINUATION) {
      this.#msgOpcode = h.opcode;
      this.#msgLen = 0;
      this.#fragments = 0;
      this.#compressed = h.rsv === RSV1;
      this.#utf8?.reset();
      // Allocated when payload bytes arrive, unless the whole frame is at hand then.
      this.#msg = null;
    }
    this.#fragments++;
  }

  /**
   * Makes room for `size` bytes of message. Allocates what arrived, not what was announced:
   * a header's length is a limit to check, not a size to allocate, so the buffer doubles as
   * bytes come in (STYLE, lessons).
   */
  #reserve(size: number): Uint8Array {
    const msg = this.#msg;
    if (msg && size <= msg.length) return msg;
    const limit = this.#compressed ? this.#maxCompressed : this.#maxMessage;
    const grown = new Uint8Array(
      Math.min(Math.max(size, (msg?.length ?? 0) * 2, FIRST_MESSAGE_CAPACITY), limit),
    );
    if (msg) grown.set(msg.subarray(0, this.#msgLen));
    this.#msg = grown;
    return grown;
  }

  /** Consumes payload bytes of the current frame; returns how many were used. */
  #readPayload(data: Uint8Array, pos: number): number {
    const h = this.#header!;
    const take = Math.min(h.payloadLength - this.#payloadDone, data.length - pos);
    const piece = data.subarray(pos, pos + take);
    if (h.mask) applyMask(piece, h.mask, this.#payloadDone);
    if (isControlOpcode(h.opcode)) {
      this.#control!.set(piece, this.#payloadDone);
    } else if (this.#msg === null && h.fin && take === h.payloadLength) {
      // A whole single-frame message in this chunk: decoded from the chunk, never buffered.
      this.#header = null;
      this.#wholeMessage(piece);
      return take;
    } else {
      // RFC 6455 §8.1: fail as soon as the text is known to be invalid, mid-frame included.
      // A compressed message's text is known only once inflated, at FIN.
      const text = this.#msgOpcode === Opcode.TEXT && !this.#compressed;
      const utf8 = text ? (this.#utf8 ??= new Utf8Validator()) : null;
      if (utf8 && !utf8.push(piece)) {
        this.fail("invalid-utf8");
        return take;
      }
      this.#reserve(this.#msgLen + take).set(piece, this.#msgLen);
      this.#msgLen += take;
    }
    this.#payloadDone += take;
    if (this.#payloadDone === h.payloadLength) this.#endFrame();
    return take;
  }

  #endFrame(): void {
    const h = this.#header!;
    this.#header = null;
    if (isControlOpcode(h.opcode)) {
      const payload = this.#control!;
      this.#control = null;
      this.#handleControl(h.opcode, payload);
    } else if (h.fin) {
      this.#endMessage();
    }
  }

  /** Ends a message that came in one frame, all in one chunk; `payload` is unmasked. */
  #wholeMessage(payload: Uint8Array): void {
    const opcode = this.#msgOpcode;
    this.#msgOpcode = -1;
    this.#fragments = 0;
    if (this.#compressed) {
      this.#compressed = false;
      this.#inflate(opcode, payload);
      return;
    }
    if (opcode === Opcode.BINARY) {
      this.#emit({ type: "binary", data: payload.slice() });
      return;
    }
    let text: string;
    if (payload.length <= SMALL_TEXT) {
      // RFC 6455 §8.1: text that is not valid UTF-8 fails the connection.
      if (!isValidUtf8(payload)) {
        this.fail("invalid-utf8");
        return;
      }
      text = decoder.decode(payload);
    } else {
      try {
        // A fatal TextDecoder accepts exactly the UTF-8 that Utf8Validator does, in one call.
        text = strictDecoder.decode(payload);
      } catch {
        this.fail("invalid-utf8");
        return;
      }
    }
    this.#emit({ type: "text", data: text });
  }

  #endMessage(): void {
    const opcode = this.#msgOpcode;
    // A copy the size of the message: the buffer may have grown past it.
    const bytes = this.#msg ? this.#msg.slice(0, this.#msgLen) : new Uint8Array(0);
    this.#msgOpcode = -1;
    this.#msg = null;
    this.#msgLen = 0;
    this.#fragments = 0;
    if (this.#compressed) {
      this.#compressed = false;
      this.#inflate(opcode, bytes);
      return;
    }
    if (opcode === Opcode.BINARY) {
      this.#emit({ type: "binary", data: bytes });
      return;
    }
    if (this.#utf8 && !this.#utf8.complete) {
      this.fail("truncated-utf8");
      return;
    }
    this.#emit({ type: "text", data: decoder.decode(bytes) });
  }

  /**
   * Ends a compressed message (RFC 7692 §7.2.2): its payload, all fragments joined, is inflated
   * with 00 00 ff ff appended, stopping past the message-size limit (a zip bomb gets 1009); the
   * inflated text is checked as UTF-8 (1007).
   */
  #inflate(opcode: number, compressed: Uint8Array): void {
    const options = { maxMessageSize: this.#maxMessage };
    if (opcode === Opcode.BINARY) {
      const result = inflateMessage(compressed, options);
      if (result.ok) this.#emit({ type: "binary", data: result.data });
      else this.#inflateFailed(result);
      return;
    }
    const result = inflateText(compressed, options);
    if (result.ok) this.#emit({ type: "text", data: result.text });
    else this.#inflateFailed(result);
  }

  #inflateFailed(result: InflateFailure): void {
    this.fail(INFLATE_FAILURE[result.kind], result.reason);
  }

  #handleControl(opcode: number, payload: Uint8Array): void {
    switch (opcode) {
      case Opcode.PING:
        // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame
        // in response, unless it already received a Close frame": while CLOSING too.
        this.#queue(Opcode.PONG, payload);
        this.#emit({ type: "ping", data: payload });
        return;
      case Opcode.PONG:
        // RFC 6455 §5.5.3: an unsolicited Pong is allowed and needs no response.
        this.#emit({ type: "pong", data: payload });
        return;
      case Opcode.CLOSE:
        this.#handleClose(payload);
        return;
    }
  }

  #handleClose(payload: Uint8Array): void {
    const parsed = parseClosePayload(payload);
    if ("error" in parsed) {
      this.fail(parsed.kind, parsed.error);
      return;
    }
    // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously send a
    // Close frame, the endpoint MUST send a Close frame in response", usually echoing the code.
    const wasOpen = this.#state === "open";
    this.#state = "closed";
    this.#closeExpected = true;
    this.#closeReceived = true;
    if (wasOpen) {
      this.#sendClose(
        parsed.code === CloseCode.NO_STATUS_RECEIVED ? EMPTY : closePayload(parsed.code, ""),
      );
    }
    this.#emit({ type: "close", code: parsed.code, reason: parsed.reason });
  }
}

/** A Close reason is at most 123 bytes (RFC 6455 §5.5: 125 with the 2-byte code). */
const MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2;

function checkControl(data: Uint8Array): void {
  if (data.length > MAX_CONTROL_PAYLOAD) {
    throw new RangeError("Cannot send a control frame longer than 125 bytes");
  }
}

/** `text` cut to at most `max` UTF-8 bytes, at a character boundary. */
export function truncateUtf8(text: string, max: number): string {
  if (text.length * 3 <= max) return text;
  const bytes = encoder.encode(text);
  if (bytes.length <= max) return text;
  let end = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return decoder.decode(bytes.subarray(0, end));
}

/** Encodes a Close frame body: a 2-byte code and a UTF-8 reason. */
export function closePayload(code: number, reason: string): Uint8Array {
  const text = encoder.encode(reason);
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Parses a Close frame body (RFC 6455 §5.5.1), or says which failure its fault is. */
export function parseClosePayload(
  payload: Uint8Array,
): { code: number; reason: string } | { error: string; kind: FailureKind } {
  if (payload.length === 0) return { code: CloseCode.NO_STATUS_RECEIVED, reason: "" };
  if (payload.length === 1) {
    return { error: "close frame with a 1-byte payload", kind: "close-body-1-byte" };
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) {
    return { error: `close frame with invalid code ${code}`, kind: "invalid-close-code" };
  }
  const reasonBytes = payload.subarray(2);
  if (!isValidUtf8(reasonBytes)) {
    return { error: "close reason is not valid UTF-8", kind: "invalid-close-reason" };
  }
  return { code, reason: strictDecoder.decode(reasonBytes) };
}

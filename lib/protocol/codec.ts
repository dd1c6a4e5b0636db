// Owns the WebSocket connection state machine (RFC 6455 §5–§7): bytes in, events and bytes out.
// Sans-I/O: no sockets, timers, clock or randomness; the caller drains output after every call.

import { CloseCode, isValidCloseCode } from "./close_codes.ts";
import {
  applyMask,
  encodeFrame,
  encodeFrameHeader,
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

/** What the codec reports to its owner, drained with `takeEvents()`. */
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
  | { readonly type: "fail"; readonly code: number; readonly reason: string };

/** Events and output drained together; see `Codec.drain()`. */
export interface CodecDrain {
  readonly events: CodecEvent[];
  readonly output: Uint8Array[];
  /** For each event, how many chunks of `output` precede it. */
  readonly outputBefore: number[];
}

/** OPEN: data flows. CLOSING: our Close is sent, the peer's is awaited. CLOSED: done. */
export type CodecState = "open" | "closing" | "closed";

export interface CodecOptions {
  /** "server" requires masked input and sends unmasked frames; "client" the reverse. */
  readonly role?: "server" | "client";
  /** Largest message in bytes, counted across fragments; larger fails with 1009. */
  readonly maxMessageSize?: number;
  /** Most frames one message may take; more fails with 1009. */
  readonly maxFragments?: number;
  /** Client role only: returns a fresh 4-byte masking key for each frame (RFC 6455 §5.3). */
  readonly maskKey?: () => Uint8Array;
}

export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
export const DEFAULT_MAX_FRAGMENTS = 65536;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
const FIRST_MESSAGE_CAPACITY = 4096;

/** The connection state machine for one WebSocket, either role. */
export class Codec {
  readonly #server: boolean;
  readonly #maxMessage: number;
  readonly #maxFragments: number;
  readonly #maskKey?: () => Uint8Array;

  #state: CodecState = "open";
  #closeExpected = false;
  #failure: string | null = null;
  #events: CodecEvent[] = [];
  #output: Uint8Array[] = [];
  /** For each event, how many output chunks had been queued (ever) when it happened. */
  #eventMarks: number[] = [];
  #outputTaken = 0;

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
  /** For text that spans chunks; allocated the first time one does. */
  #utf8: Utf8Validator | null = null;

  constructor(options: CodecOptions = {}) {
    this.#server = (options.role ?? "server") === "server";
    this.#maxMessage = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS;
    this.#maskKey = options.maskKey;
    if (!this.#server && !this.#maskKey) throw new TypeError("A client codec needs maskKey");
  }

  get state(): CodecState {
    return this.#state;
  }

  /** True once the TCP connection should be closed (after sending what is queued). */
  get closeExpected(): boolean {
    return this.#closeExpected;
  }

  /** Why we failed the connection, or null. */
  get failure(): string | null {
    return this.#failure;
  }

  /** Drains the events produced since the last call. */
  takeEvents(): CodecEvent[] {
    const events = this.#events;
    if (events.length) {
      this.#events = [];
      this.#eventMarks = [];
    }
    return events;
  }

  /** Drains the bytes to write to the peer, in order. */
  takeOutput(): Uint8Array[] {
    const out = this.#output;
    if (out.length) {
      this.#output = [];
      this.#outputTaken += out.length;
    }
    return out;
  }

  /**
   * Drains events and output together, keeping their relative order: `outputBefore[i]` chunks
   * of `output` were queued before `events[i]` happened (a pong before its ping's event, a Close
   * before the fail event). A caller that replies to events between those chunks keeps replies
   * to messages that arrived ahead of a fatal frame ahead of the Close, as on the wire.
   */
  drain(): CodecDrain {
    const taken = this.#outputTaken;
    const marks = this.#eventMarks;
    const events = this.takeEvents();
    const output = this.takeOutput();
    const outputBefore = marks.map((mark) => Math.min(Math.max(mark - taken, 0), output.length));
    return { events, output, outputBefore };
  }

  /** Whether `takeOutput()` has anything. */
  get hasOutput(): boolean {
    return this.#output.length > 0;
  }

  /**
   * Feeds bytes from the peer. The codec may unmask `data` in place during the call but
   * keeps no reference to it afterwards, so the caller may reuse the buffer.
   */
  receive(data: Uint8Array): void {
    let pos = 0;
    while (pos < data.length && this.#accepting()) {
      if (this.#header === null) {
        const used = this.#readHeader(data, pos);
        if (used < 0) return;
        pos += used;
      } else {
        pos += this.#readPayload(data, pos);
      }
    }
  }

  /** The peer closed TCP. Without a Close frame first, that is an abnormal closure (1006). */
  receiveEof(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#closeExpected = true;
    this.#emit({ type: "close", code: CloseCode.ABNORMAL_CLOSURE, reason: "" });
  }

  /** Queues a text message. */
  sendText(text: string): void {
    this.#send(Opcode.TEXT, encoder.encode(text));
  }

  /**
   * Queues a binary message. A server codec queues a payload over MERGE_LIMIT by reference
   * (header and payload go out as two writes), so leave it unchanged until it is sent.
   */
  sendBinary(data: Uint8Array): void {
    this.#send(Opcode.BINARY, data);
  }

  /** Queues a ping (payload at most 125 bytes). */
  sendPing(data: Uint8Array = EMPTY): void {
    this.#checkControl(data);
    this.#send(Opcode.PING, data);
  }

  /** Queues an unsolicited pong (payload at most 125 bytes). */
  sendPong(data: Uint8Array = EMPTY): void {
    this.#checkControl(data);
    this.#send(Opcode.PONG, data);
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2). A no-op unless open.
   * Throws on a code that may not be sent or a reason longer than 123 bytes.
   */
  close(code: number = CloseCode.NORMAL_CLOSURE, reason = ""): void {
    if (!isValidCloseCode(code)) throw new RangeError(`Cannot close with code ${code}`);
    const payload = closePayload(code, reason);
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError("Cannot close: the reason is longer than 123 bytes");
    }
    if (this.#state !== "open") return;
    this.#queue(Opcode.CLOSE, payload);
    this.#state = "closing";
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): queues a Close with `code`, records `reason`,
   * and discards all further input. The TCP connection should close once output is sent.
   */
  fail(code: number, reason: string): void {
    if (this.#failure !== null || this.#state === "closed") return;
    this.#failure = reason;
    if (this.#state === "open") this.#queue(Opcode.CLOSE, closePayload(code, ""));
    this.#state = "closed";
    this.#closeExpected = true;
    this.#msg = null;
    this.#control = null;
    this.#emit({ type: "fail", code, reason });
  }

  #emit(event: CodecEvent): void {
    this.#events.push(event);
    this.#eventMarks.push(this.#outputTaken + this.#output.length);
  }

  #accepting(): boolean {
    return this.#failure === null && this.#state !== "closed";
  }

  #checkControl(data: Uint8Array): void {
    if (data.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError("Cannot send a control frame longer than 125 bytes");
    }
  }

  #send(opcode: number, payload: Uint8Array): void {
    if (this.#state !== "open") throw new Error("Cannot send: the connection is closing");
    this.#queue(opcode, payload);
  }

  #queue(opcode: number, payload: Uint8Array): void {
    if (this.#server) {
      for (const part of encodeFrame(opcode, payload)) this.#output.push(part);
      return;
    }
    const mask = this.#maskKey!();
    const masked = payload.slice();
    applyMask(masked, mask);
    this.#output.push(encodeFrameHeader(opcode, masked.length, { mask }), masked);
  }

  /** Returns the bytes of `data` used for a header, or -1 when all were held for later. */
  #readHeader(data: Uint8Array, pos: number): number {
    let result;
    let used: number;
    if (this.#headerHeld === 0) {
      result = parseFrameHeader(data.subarray(pos), this.#maskBytes());
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
      result = parseFrameHeader(bytes.subarray(0, held + take), this.#maskBytes());
      if (result === NEED_DATA) {
        this.#headerHeld += take;
        return -1;
      }
      this.#headerHeld = 0;
      used = "error" in result ? 0 : result.headerLength - held;
    }
    if ("error" in result) {
      // RFC 6455 §10.4: a legal length beyond what we can handle is "too big" (1009).
      const code = result.tooLarge ? CloseCode.MESSAGE_TOO_BIG : CloseCode.PROTOCOL_ERROR;
      this.fail(code, result.error);
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
    const rule = this.#frameRuleBroken(h);
    if (rule) {
      this.fail(rule.code, rule.reason);
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
  #frameRuleBroken(h: FrameHeader): { code: number; reason: string } | null {
    const protocol = (reason: string) => ({ code: CloseCode.PROTOCOL_ERROR, reason });
    // RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated".
    if (h.rsv !== 0) return protocol("reserved bits are set");
    // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail_".
    if (!isKnownOpcode(h.opcode)) return protocol(`reserved opcode ${h.opcode}`);
    // RFC 6455 §5.1: a server MUST close on an unmasked frame; a client on a masked one.
    if (this.#server && h.mask === null) return protocol("client frame is not masked");
    if (!this.#server && h.mask !== null) return protocol("server frame is masked");
    if (isControlOpcode(h.opcode)) {
      // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less
      // and MUST NOT be fragmented."
      if (!h.fin) return protocol("fragmented control frame");
      if (h.payloadLength > MAX_CONTROL_PAYLOAD) return protocol("control frame over 125 bytes");
      return null;
    }
    // RFC 6455 §5.4: fragments of one message are not interleaved with another message.
    if (h.opcode === Opcode.CONTINUATION && this.#msgOpcode < 0) {
      return protocol("continuation frame without a message to continue");
    }
    if (h.opcode !== Opcode.CONTINUATION && this.#msgOpcode >= 0) {
      return protocol("new message started inside a fragmented message");
    }
    const tooBig = { code: CloseCode.MESSAGE_TOO_BIG, reason: "" };
    if (this.#msgLen + h.payloadLength > this.#maxMessage) {
      return { ...tooBig, reason: `message over ${this.#maxMessage} bytes` };
    }
    if (this.#fragments + 1 > this.#maxFragments) {
      return { ...tooBig, reason: `message in over ${this.#maxFragments} frames` };
    }
    return null;
  }

  #startDataFrame(h: FrameHeader): void {
    if (h.opcode !== Opcode.CONTINUATION) {
      this.#msgOpcode = h.opcode;
      this.#msgLen = 0;
      this.#fragments = 0;
      this.#utf8?.reset();
      // Allocated with the first payload bytes, unless the whole frame is at hand then.
      this.#msg = null;
    } else {
      this.#reserve(this.#msgLen + h.payloadLength);
    }
    this.#fragments++;
  }

  /** The message buffer: a single-frame message gets exactly its size; a fragmented one grows. */
  #message(h: FrameHeader): Uint8Array {
    if (this.#msg) return this.#msg;
    const capacity = h.fin ? h.payloadLength : Math.max(h.payloadLength, FIRST_MESSAGE_CAPACITY);
    this.#msg = new Uint8Array(Math.min(capacity, this.#maxMessage));
    return this.#msg;
  }

  #reserve(size: number): void {
    const msg = this.#message(this.#header!);
    if (size <= msg.length) return;
    const grown = new Uint8Array(Math.min(Math.max(size, msg.length * 2), this.#maxMessage));
    grown.set(msg.subarray(0, this.#msgLen));
    this.#msg = grown;
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
      const utf8 = this.#msgOpcode === Opcode.TEXT ? (this.#utf8 ??= new Utf8Validator()) : null;
      if (utf8 && !utf8.push(piece)) {
        this.fail(CloseCode.INVALID_PAYLOAD_DATA, "invalid UTF-8 in text message");
        return take;
      }
      this.#message(h).set(piece, this.#msgLen);
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
    if (opcode === Opcode.BINARY) {
      this.#emit({ type: "binary", data: payload.slice() });
      return;
    }
    let text: string;
    try {
      // A fatal TextDecoder accepts exactly the UTF-8 that Utf8Validator does, in one call.
      text = strictDecoder.decode(payload);
    } catch {
      // RFC 6455 §8.1: text that is not valid UTF-8 fails the connection.
      this.fail(CloseCode.INVALID_PAYLOAD_DATA, "invalid UTF-8 in text message");
      return;
    }
    this.#emit({ type: "text", data: text });
  }

  #endMessage(): void {
    const opcode = this.#msgOpcode;
    const bytes = this.#msg ? this.#msg.subarray(0, this.#msgLen) : new Uint8Array(0);
    this.#msgOpcode = -1;
    this.#msg = null;
    this.#msgLen = 0;
    this.#fragments = 0;
    if (opcode === Opcode.BINARY) {
      this.#emit({ type: "binary", data: bytes });
      return;
    }
    if (this.#utf8 && !this.#utf8.complete) {
      this.fail(CloseCode.INVALID_PAYLOAD_DATA, "text message ends inside a UTF-8 sequence");
      return;
    }
    this.#emit({ type: "text", data: decoder.decode(bytes) });
  }

  #handleControl(opcode: number, payload: Uint8Array): void {
    switch (opcode) {
      case Opcode.PING:
        // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame
        // in response ... with identical Application data".
        if (this.#state === "open") this.#queue(Opcode.PONG, payload);
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
      this.fail(parsed.code, parsed.error);
      return;
    }
    // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously send a
    // Close frame, the endpoint MUST send a Close frame in response", usually echoing the code.
    if (this.#state === "open") {
      const echo = parsed.code === CloseCode.NO_STATUS_RECEIVED
        ? EMPTY
        : closePayload(parsed.code, "");
      this.#queue(Opcode.CLOSE, echo);
    }
    this.#state = "closed";
    this.#closeExpected = true;
    this.#emit({ type: "close", code: parsed.code, reason: parsed.reason });
  }
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

/** Parses a Close frame body (RFC 6455 §5.5.1), or says which close code its fault earns. */
export function parseClosePayload(
  payload: Uint8Array,
): { code: number; reason: string } | { error: string; code: number } {
  if (payload.length === 0) return { code: CloseCode.NO_STATUS_RECEIVED, reason: "" };
  if (payload.length === 1) {
    return { error: "close frame with a 1-byte payload", code: CloseCode.PROTOCOL_ERROR };
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) {
    return { error: `close frame with invalid code ${code}`, code: CloseCode.PROTOCOL_ERROR };
  }
  const reasonBytes = payload.subarray(2);
  if (!isValidUtf8(reasonBytes)) {
    return { error: "close reason is not valid UTF-8", code: CloseCode.INVALID_PAYLOAD_DATA };
  }
  return { code, reason: strictDecoder.decode(reasonBytes) };
}

// Owns one client socket: the opening handshake, the read loop feeding the codec, the
// bounded outbound queue with coalesced writes, and the deadlines the server enforces.

import { concatBytes } from "../protocol/bytes.ts";
import { Codec, type CodecEvent } from "../protocol/codec.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import {
  encodeFrame,
  encodeTextFrame,
  encodeTextFrameInto,
  MAX_FRAME_HEADER,
  MERGE_LIMIT,
  Opcode,
  textFrameBound,
} from "../protocol/frame.ts";
import {
  acceptResponse,
  errorResponse,
  type HandshakeError,
  type HttpRequest,
  NEED_DATA,
  parseRequestHead,
  RequestReader,
  type UpgradeRequest as WsUpgrade,
  validateUpgrade,
} from "../protocol/handshake.ts";
import type { CloseInfo, Connection, Logger, Message } from "../api/handlers.ts";
import type { Options } from "../api/options.ts";

/** The server's answer to a valid upgrade request. */
export type UpgradeDecision =
  | { readonly accept: true; readonly protocol: string; readonly data: unknown }
  | { readonly accept: false; readonly error: HandshakeError };

/** A valid upgrade request: the HTTP request and what it asks of the WebSocket. */
export interface UpgradeAsked {
  readonly request: HttpRequest;
  readonly ws: WsUpgrade;
}

/** What a client needs from the server that owns it. */
export interface ClientHost {
  readonly options: Options;
  readonly log: Logger;
  decideUpgrade(client: Client, asked: UpgradeAsked): Promise<UpgradeDecision>;
  /** The handshake is done; events follow only after this settles. */
  opened(client: Client): void | Promise<void>;
  /** One event from the codec; the next waits until this settles. */
  event(client: Client, event: CodecEvent): void | Promise<void>;
  /** The socket is closed; called once, for every client that was opened. */
  closed(client: Client, info: CloseInfo): void;
  /** Called once, for every client, when it is gone. */
  forget(client: Client): void;
  /** Asks for `flush()` at the end of this turn, so one turn's frames go out together. */
  markDirty(client: Client): void;
  /** A client was closed for reading too slowly. */
  slowConsumer(client: Client): void;
}

type Phase = "handshake" | "open" | "closing" | "finishing" | "closed";

const MIN_READ = 1024;
/**
 * An open connection starts reading with this little: each idle connection keeps one read
 * pending with its buffer. A full read grows it (x4), as for any buffer.
 */
const IDLE_READ = 256;
const MAX_READ = 256 * 1024;
/** Frames up to this size are copied together into one write. */
const COALESCE_LIMIT = 256 * 1024;
const EMPTY = new Uint8Array(0);
const NO_HEADERS: ReadonlyMap<string, string> = new Map();
/** A request-target whose path `new URL` would return unchanged: no dot, percent, "//" start. */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9\-_~!$&'()*+,;=:@/]*$/;

/** Texts up to this many UTF-16 units sent to one client are framed into the shared batch. */
const BATCH_TEXT_LIMIT = 1024;
const BATCH_SIZE = 16 * 1024;

/**
 * Small text frames that `send()` queues are written here, one client's at a time, and copied
 * out as one chunk when that client flushes, queues anything else, or another client sends:
 * one allocation per client per turn rather than one per frame (a typed-array allocation costs
 * ~340 ns in this Deno, whatever its size). Shared, so it costs idle clients nothing.
 */
const batch = { owner: null as Client | null, bytes: new Uint8Array(BATCH_SIZE), length: 0 };

let nextId = 1;

/** One client connection. The handler-facing `Connection` API is its public surface. */
export class Client implements Connection {
  readonly id = nextId++;
  remoteAddress: string;
  protocol = "";
  data: unknown = undefined;

  readonly #conn: Deno.Conn;
  readonly #host: ClientHost;
  #codec: Codec | null = null;
  #phase: Phase = "handshake";
  #buf = new Uint8Array(MIN_READ);
  #closeInfo: CloseInfo | null = null;
  #wasOpened = false;
  /** The request-target; `path` and `query` are derived from it when first asked for. */
  #target = "";
  /**
   * The request head as text. Its parsed headers are dropped once the handshake is done (an
   * idle connection keeps one string, not a Map of strings) and parsed again if asked for.
   */
  #head = "";
  #headers: ReadonlyMap<string, string> | null = null;
  #path: string | null = null;
  #query: URLSearchParams | null = null;

  // Timing, in Date.now() milliseconds; checked by the server's shared timer.
  #deadline: number;
  #lastRead: number;
  #pingSentAt = 0;

  // Outbound queue: chunks from #outHead on are unwritten and #outBytes counts them;
  // #inFlight counts the chunk being written.
  #out: Uint8Array[] = [];
  #outHead = 0;
  #outBytes = 0;
  #inFlight = 0;
  #writing = false;
  #noDelay = false;
  /** Whether the host already holds this client in its list to flush this turn. */
  #flushQueued = false;
  #drained: (() => void)[] = [];

  constructor(conn: Deno.Conn, host: ClientHost) {
    const now = Date.now();
    this.#conn = conn;
    this.#host = host;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddress = addr.hostname ?? "";
    this.#lastRead = now;
    this.#deadline = now + host.options.handshakeTimeout;
  }

  /** The peer address of the TCP connection (before any proxy header is believed). */
  get peerAddress(): string {
    return (this.#conn.remoteAddr as Deno.NetAddr).hostname ?? "";
  }

  /** The path without the query, e.g. "/chat" (empty before the handshake). */
  get path(): string {
    return this.#path ??= pathOf(this.#target);
  }

  get query(): URLSearchParams {
    return this.#query ??= this.#target
      ? new URL(this.#target, "http://localhost").searchParams
      : new URLSearchParams();
  }

  /** Request headers by lower-case name (empty before the handshake). */
  get headers(): ReadonlyMap<string, string> {
    if (this.#headers) return this.#headers;
    if (this.#head === "") return NO_HEADERS;
    const request = parseRequestHead(this.#head, Infinity);
    this.#headers = "status" in request ? NO_HEADERS : request.headers;
    return this.#headers;
  }

  get bufferedAmount(): number {
    return this.#outBytes + this.#inFlight + (batch.owner === this ? batch.length : 0);
  }

  get isOpen(): boolean {
    return this.#phase === "open";
  }

  /** Serves the connection until it is closed. Never throws. */
  async run(): Promise<void> {
    try {
      if (await this.#handshake()) await this.#readFrames();
    } catch (e) {
      if (this.#phase !== "closed") this.#host.log.debug(`connection ${this.id}: ${e}`);
    } finally {
      this.#abort();
      if (this.#wasOpened) {
        this.#host.closed(
          this,
          this.#closeInfo ?? { code: CloseCode.ABNORMAL_CLOSURE, reason: "", clean: false },
        );
      }
      this.#host.forget(this);
    }
  }

  send(message: Message): boolean {
    if (this.#phase !== "open") return false;
    if (typeof message === "string") {
      if (message.length <= BATCH_TEXT_LIMIT) return this.#sendBatched(message);
      return this.enqueue(encodeTextFrame(message));
    }
    return this.enqueue(encodeFrame(Opcode.BINARY, message));
  }

  close(code: number = CloseCode.NORMAL_CLOSURE, reason = ""): void {
    if (this.#phase !== "open") return;
    this.#codec!.close(code, reason);
    this.#phase = "closing";
    this.#deadline = Date.now() + this.#host.options.closeTimeout;
    this.#takeCodecOutput();
  }

  /**
   * Queues already-encoded frame bytes (not copied: a broadcast shares them). Returns false
   * when the connection is not open, or when the queue limit is hit and it is being closed.
   */
  enqueue(parts: readonly Uint8Array[]): boolean {
    if (this.#phase !== "open") return false;
    let size = 0;
    for (const p of parts) size += p.length;
    if (this.bufferedAmount + size > this.#host.options.maxQueue) {
      this.#closeSlowConsumer();
      return false;
    }
    this.#push(parts, size);
    return true;
  }

  /**
   * Starts writing what is queued, if not writing already. Returns a promise that settles
   * once that queue is written (or the socket is gone), or null when no write was started.
   */
  flush(): Promise<void> | null {
    this.#flushQueued = false;
    this.#seal();
    if (this.#writing || this.#outBytes === 0) return null;
    return this.#pump();
  }

  /** Resolves once everything queued so far is written (or the socket is gone). */
  drained(): Promise<void> {
    if (this.bufferedAmount === 0 || this.#phase === "closed") return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /** Enforces deadlines and liveness; called by the server's shared timer. */
  tick(now: number): void {
    const o = this.#host.options;
    if (this.#phase === "closed") return;
    if (this.#deadline && now >= this.#deadline) {
      this.#host.log.debug(`connection ${this.id}: ${this.#phase} timed out; dropping TCP`);
      this.#abort();
      return;
    }
    if (this.#phase !== "open") return;
    if (this.#pingSentAt) {
      if (now - this.#pingSentAt >= o.pongTimeout) {
        this.#host.log.debug(`connection ${this.id}: no pong within ${o.pongTimeout} ms`);
        this.#closeInfo = {
          code: CloseCode.ABNORMAL_CLOSURE,
          reason: "pong timeout",
          clean: false,
        };
        this.#abort();
      }
    } else if (now - this.#lastRead >= o.pingInterval) {
      this.#pingSentAt = now;
      this.#codec!.sendPing(EMPTY);
      this.#takeCodecOutput();
    }
  }

  /** `enqueue(encodeTextFrame(text))`, framed into the shared batch instead. */
  #sendBatched(text: string): boolean {
    if (batch.owner !== this || batch.length + textFrameBound(text.length) > BATCH_SIZE) {
      const owner = batch.owner;
      if (owner) owner.#seal();
      batch.owner = this;
    }
    const size = encodeTextFrameInto(text, batch.bytes, batch.length);
    if (this.bufferedAmount + size > this.#host.options.maxQueue) {
      this.#closeSlowConsumer();
      return false;
    }
    batch.length += size;
    this.#markDirty();
    return true;
  }

  /** Moves this client's frames out of the shared batch into its queue, as one chunk. */
  #seal(): void {
    if (batch.owner !== this) return;
    const length = batch.length;
    batch.owner = null;
    batch.length = 0;
    if (length === 0) return;
    this.#out.push(batch.bytes.slice(0, length));
    this.#outBytes += length;
  }

  /** Drops this client's frames from the shared batch, unsent. */
  #dropBatch(): void {
    if (batch.owner !== this) return;
    batch.owner = null;
    batch.length = 0;
  }

  #markDirty(): void {
    // Once per turn, not once per frame: a burst of lines would list the client once each.
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      this.#host.markDirty(this);
    }
  }

  #push(parts: readonly Uint8Array[], size: number): void {
    // Frames already in the batch were queued first, so they go first.
    this.#seal();
    for (const p of parts) this.#out.push(p);
    this.#outBytes += size;
    this.#markDirty();
  }

  async #read(): Promise<number | null> {
    const n = await this.#conn.read(this.#buf);
    if (n !== null) this.#lastRead = Date.now();
    return n;
  }

  /** Adapts the read buffer: grow while reads fill it, back to small when traffic is light. */
  #resizeBuffer(n: number): void {
    const size = this.#buf.length;
    if (n === size && size < MAX_READ) this.#buf = new Uint8Array(size * 4);
    else if (n < MIN_READ && size > MIN_READ) this.#buf = new Uint8Array(MIN_READ);
  }

  async #handshake(): Promise<boolean> {
    const reader = new RequestReader();
    for (;;) {
      const n = await this.#read();
      if (n === null) return false;
      const result = reader.receive(this.#buf.subarray(0, n));
      if (result === NEED_DATA) continue;
      if ("status" in result) return await this.#refuse(result);
      const ws = validateUpgrade(result.request);
      if ("status" in ws) return await this.#refuse(ws);
      const trailing = result.trailing.length > 0 ? result.trailing.slice() : EMPTY;
      this.#describe(result.request, result.head);
      const decision = await this.#host.decideUpgrade(this, { request: result.request, ws });
      if (this.#phase === "closed") return false;
      if (!decision.accept) return await this.#refuse(decision.error);
      return await this.#accept(ws.key, decision, trailing);
    }
  }

  #describe(request: HttpRequest, head: string): void {
    this.#target = request.target;
    this.#head = head;
    this.#headers = request.headers;
  }

  async #accept(
    key: string,
    decision: UpgradeDecision & { accept: true },
    trailing: Uint8Array,
  ): Promise<boolean> {
    this.protocol = decision.protocol;
    this.data = decision.data;
    this.#headers = null;
    await this.#writeAll(acceptResponse(key, decision.protocol || undefined));
    const o = this.#host.options;
    this.#codec = new Codec({ maxMessageSize: o.maxMessageSize });
    this.#buf = new Uint8Array(IDLE_READ);
    this.#phase = "open";
    this.#deadline = 0;
    this.#wasOpened = true;
    await this.#host.opened(this);
    if (trailing.length > 0) {
      this.#codec.receive(trailing);
      const pending = this.#process();
      if (pending) await pending;
    }
    return true;
  }

  async #refuse(error: HandshakeError): Promise<false> {
    this.#host.log.debug(`connection ${this.id}: refused with ${error.status}: ${error.message}`);
    this.#phase = "finishing";
    this.#deadline = Date.now() + this.#host.options.closeTimeout;
    await this.#writeAll(errorResponse(error));
    await this.#finish();
    return false;
  }

  async #readFrames(): Promise<void> {
    const codec = this.#codec!;
    while (!codec.closeExpected) {
      // Read here rather than through #read: an idle connection then keeps one fewer
      // suspended async frame and promise alive while it waits.
      const n = await this.#conn.read(this.#buf);
      if (n === null) {
        codec.receiveEof();
      } else {
        this.#lastRead = Date.now();
        this.#pingSentAt = 0;
        codec.receive(this.#buf.subarray(0, n));
        this.#resizeBuffer(n);
      }
      const pending = this.#process();
      if (pending) await pending;
    }
    this.#phase = "finishing";
    this.#deadline = Date.now() + this.#host.options.closeTimeout;
    this.flush();
    await this.drained();
    await this.#finish();
  }

  /** Sends what the codec queued, then hands its events to the host, in order. */
  async #process(): Promise<void> {
    // The codec's own output (pongs, a Close) goes out in its place among the handlers'
    // replies: replies to messages that arrived ahead of a fatal frame precede its Close.
    const { events, output, outputBefore } = this.#codec!.drain();
    let queued = 0;
    for (let i = 0; i < events.length; i++) {
      this.#queueCodecOutput(output.slice(queued, outputBefore[i]));
      queued = outputBefore[i];
      this.#noteClose(events[i]);
      const pending = this.#host.event(this, events[i]);
      if (pending) await pending;
    }
    this.#queueCodecOutput(output.slice(queued));
    this.#takeCodecOutput();
  }

  #noteClose(event: CodecEvent): void {
    if (this.#closeInfo) return;
    if (event.type === "close") {
      const clean = event.code !== CloseCode.ABNORMAL_CLOSURE;
      this.#closeInfo = { code: event.code, reason: event.reason, clean };
    } else if (event.type === "fail") {
      this.#closeInfo = { code: event.code, reason: event.reason, clean: false };
      this.#host.log.debug(`connection ${this.id}: failed with ${event.code}: ${event.reason}`);
    }
  }

  /** Queues whatever the codec has queued, then notes whether it has begun closing. */
  #takeCodecOutput(): void {
    const codec = this.#codec!;
    if (codec.hasOutput) this.#queueCodecOutput(codec.takeOutput());
    if (codec.state !== "open" && this.#phase === "open") {
      this.#phase = "closing";
      this.#deadline = Date.now() + this.#host.options.closeTimeout;
    }
  }

  #queueCodecOutput(parts: Uint8Array[]): void {
    if (parts.length === 0) return;
    let size = 0;
    for (const p of parts) size += p.length;
    // Control frames from the codec (pong, close) are never refused by the queue limit...
    this.#push(parts, size);
    if (this.#phase === "open" && this.bufferedAmount > this.#host.options.maxQueue) {
      // ...but a peer that keeps pinging without reading its pongs (RFC 6455 §5.5.2) would
      // grow the queue without bound: it is a slow consumer like any other.
      this.#closeSlowConsumer();
    }
  }

  #closeSlowConsumer(): void {
    // Frames not yet handed to the socket are dropped; one being written finishes first. A
    // bare payload next in line belongs to a header already taken, so it stays.
    this.#dropBatch();
    const next = this.#out[this.#outHead];
    const keep = next && isBarePayload(next) ? [next] : [];
    this.#out = keep;
    this.#outHead = 0;
    this.#outBytes = keep.length ? next.length : 0;
    this.#closeInfo = { code: CloseCode.POLICY_VIOLATION, reason: "slow consumer", clean: false };
    this.#codec!.fail(CloseCode.POLICY_VIOLATION, "slow consumer");
    this.#phase = "finishing";
    this.#deadline = Date.now() + Math.min(this.#host.options.closeTimeout, 2000);
    this.#host.slowConsumer(this);
    const parts = this.#codec!.takeOutput();
    this.#push(parts, parts.reduce((n, p) => n + p.length, 0));
  }

  /** Takes the next write: one large chunk alone, or small chunks copied together. */
  #nextChunk(): Uint8Array {
    const out = this.#out;
    const first = out[this.#outHead++];
    if (first.length >= COALESCE_LIMIT || this.#outHead === out.length) return first;
    let end = this.#outHead, total = first.length;
    while (end < out.length && total + out[end].length <= COALESCE_LIMIT) {
      total += out[end++].length;
    }
    if (end === this.#outHead) return first;
    const joined = concatBytes(out.slice(this.#outHead - 1, end), total);
    this.#outHead = end;
    return joined;
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    if (!this.#noDelay) this.#setNoDelay();
    try {
      // Frames sent while a write was in flight may still sit in the batch.
      for (;;) {
        this.#seal();
        if (this.#outHead === this.#out.length) break;
        const chunk = this.#nextChunk();
        if (this.#outHead === this.#out.length) {
          this.#out = [];
          this.#outHead = 0;
        }
        this.#outBytes -= chunk.length;
        this.#inFlight = chunk.length;
        await this.#writeAll(chunk);
        this.#inFlight = 0;
      }
    } catch (e) {
      this.#host.log.debug(`connection ${this.id}: write failed: ${e}`);
      this.#abort();
    } finally {
      this.#writing = false;
      this.#inFlight = 0;
      if (this.#outBytes === 0 || this.#phase === "closed") this.#wakeDrained();
    }
  }

  /**
   * Turns Nagle's algorithm off before the first frame goes out, so a small frame written while
   * an earlier one is unacknowledged is not held back. Not at accept: the 101 is the first
   * segment, which Nagle never delays, and a connection that stays idle never pays the call.
   */
  #setNoDelay(): void {
    this.#noDelay = true;
    try {
      (this.#conn as Deno.TcpConn).setNoDelay(true);
    } catch { /* the peer is already gone; the write will say so */ }
  }

  #wakeDrained(): void {
    const waiters = this.#drained;
    this.#drained = [];
    for (const w of waiters) w();
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      done += await this.#conn.write(done === 0 ? bytes : bytes.subarray(done));
    }
  }

  /** Half-closes, then reads until the peer closes too, so our last bytes are not reset. */
  async #finish(): Promise<void> {
    try {
      await this.#conn.closeWrite();
      while (this.#phase !== "closed" && (await this.#conn.read(this.#buf)) !== null) {
        // Discard: the WebSocket is over; only the peer's FIN is awaited.
      }
    } catch {
      // The peer reset or the deadline aborted the socket: either way it is done.
    }
  }

  #abort(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#dropBatch();
    this.#out = [];
    this.#outHead = 0;
    this.#outBytes = 0;
    this.#wakeDrained();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/**
 * Whether a queued part may be a frame's payload queued apart from its header. A single whole
 * frame (a merged header and payload, or a control frame) is at most MERGE_LIMIT plus a header
 * long, so a longer part is the second half of an `encodeFrame` pair, or else a run of whole
 * frames (a FIFO batch), which is just as safe to keep.
 */
/** The pathname `new URL(target, base)` gives, without parsing a URL for the usual plain path. */
function pathOf(target: string): string {
  if (target === "") return "";
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  if (PLAIN_PATH.test(path)) return path;
  return new URL(target, "http://localhost").pathname;
}

function isBarePayload(part: Uint8Array): boolean {
  return part.length > MERGE_LIMIT + MAX_FRAME_HEADER;
}

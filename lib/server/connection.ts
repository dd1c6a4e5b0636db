// Owns one client socket: the opening handshake, the read loop that feeds the codec and pulls
// its events one at a time, the write pump that drains the frame-aware outbound queue, and the
// end of TCP, and the permessage-deflate agreement (RFC 7692) made in the handshake. Every frame
// it sends goes through the codec; deadlines come from Liveness.

import type { CloseInfo, Connection, Logger, Message } from "../api/handlers.ts";
import type { Options } from "../api/options.ts";
import type { PushStats } from "../metrics/stats.ts";
import { Liveness, type LivenessAction } from "../policy/liveness.ts";
import type { MessageRate } from "../policy/message_rate.ts";
import { OutboundQueue, SharedBytes } from "../policy/outbound_queue.ts";
import type { Route } from "../policy/router.ts";
import type { UpgradeDecision } from "../policy/upgrade_policy.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { Codec, type CodecEvent, type EncodedFrames } from "../protocol/codec.ts";
import { type Failure, failure, type FailureKind } from "../protocol/failures.ts";
import { encodeTextFrame, encodeTextFrameInto, textFrameBound } from "../protocol/frame.ts";
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
import { type DeflateParams, negotiateDeflate } from "../protocol/permessage_deflate.ts";

/** A valid upgrade request: the HTTP request and what it asks of the WebSocket. */
export interface UpgradeAsked {
  readonly request: HttpRequest;
  readonly ws: WsUpgrade;
}

/** What a connection needs from the server that owns it. */
export interface ConnectionHost {
  readonly options: Options;
  readonly log: Logger;
  /** Counters: bytes in and out are added here, once per read and per write. */
  readonly stats: PushStats;
  /** The clock, in milliseconds: read by the shell, passed into the pure parts. */
  now(): number;
  /** Where a complete request head goes: an upgrade, or a fixed resource. */
  route(request: HttpRequest): Route;
  decideUpgrade(conn: ClientConnection, asked: UpgradeAsked): Promise<UpgradeDecision>;
  /** The handshake is done; events follow only after this settles. */
  opened(conn: ClientConnection): void | Promise<void>;
  /** A text, binary or ping event; the next waits until this settles. */
  event(conn: ClientConnection, event: CodecEvent): void | Promise<void>;
  /** The socket is closed; called once, for every connection that was opened. */
  closed(conn: ClientConnection, info: CloseInfo): void;
  /** Called once, for every connection, when it is gone. */
  forget(conn: ClientConnection): void;
  /** Asks for `flush()` at the end of this turn, so one turn's frames go out together. */
  markDirty(conn: ClientConnection): void;
  /** A write unit of `conn` was written: its queue has room again (a paced replay goes on). */
  drained(conn: ClientConnection): void;
  /** The connection failed (peer fault, slow consumer, timeout, internal error). */
  failed(conn: ClientConnection, failure: Failure): void;
  /** The handshake was refused with this error. */
  refused(conn: ClientConnection, error: HandshakeError): void;
  /** `conn.subscribe` / `conn.unsubscribe` from a handler (push.v1 channels). */
  subscribe(conn: ClientConnection, channel: string): boolean;
  unsubscribe(conn: ClientConnection, channel: string): boolean;
}

const MIN_READ = 1024;
/**
 * An open connection starts reading with this little: each idle connection keeps one read
 * pending with its buffer. A full read grows it (x4), as for any buffer.
 */
const IDLE_READ = 256;
const MAX_READ = 256 * 1024;
/** A slow consumer gets at most this long to take its Close before TCP is dropped. */
const SLOW_CONSUMER_CLOSE_MS = 2000;
const NO_HEADERS: ReadonlyMap<string, string> = new Map();
const EXTENSIONS_HEADER = "sec-websocket-extensions";
/** A request-target whose path `new URL` would return unchanged: no dot, percent, "//" start. */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9\-_~!$&'()*+,;=:@/]*$/;

/** Texts up to this many UTF-16 units sent to one client are framed into the shared batch. */
const BATCH_TEXT_LIMIT = 1024;
const BATCH_SIZE = 16 * 1024;

/**
 * Small text frames that `send()` queues are written here, one connection's at a time, and
 * copied out as one queue entry when that connection flushes, queues anything else, or another
 * connection sends: one allocation per connection per turn rather than one per frame (a typed
 * array allocation costs ~340 ns in this Deno, whatever its size). Shared, so idle connections
 * pay nothing. Every frame in it is whole.
 */
const batch = {
  owner: null as ClientConnection | null,
  bytes: new Uint8Array(BATCH_SIZE),
  length: 0,
};

/**
 * A sealed batch that will be written at once (its connection has nothing queued or in flight,
 * as when echoing) is copied into a view of this shared slab instead of an array of its own: for
 * 560 B that costs ~60 ns against ~500 ns here. Views are carved one after another and never
 * reused; a full slab is replaced, and the old one is freed by GC once its views are written. A
 * connection holds at most one slab view (its next write), so a stalled write pins one slab.
 */
const slab = { bytes: new Uint8Array(BATCH_SIZE), used: 0 };

let nextId = 1;

/** One client connection. The handler-facing `Connection` API is its public surface. */
export class ClientConnection implements Connection {
  readonly id = nextId++;
  remoteAddress: string;
  protocol = "";
  data: unknown = undefined;
  user: string | null = null;
  /** The address counted against the connection limits, released when the connection goes. */
  admitted: string | null = null;
  /** This connection's inbound message budget (--message-rate), or null when off. */
  rate: MessageRate | null = null;
  /** permessage-deflate as agreed in the handshake, or null (not offered, or --compression off). */
  deflate: DeflateParams | null = null;

  readonly #socket: Deno.Conn;
  readonly #host: ConnectionHost;
  readonly #liveness: Liveness;
  readonly #queue = new OutboundQueue();
  /** Null until the handshake completes: the one state machine of the open connection. */
  #codec: Codec | null = null;
  #buf = new Uint8Array(MIN_READ);
  #socketClosed = false;
  #halfClosed = false;
  #eof = false;
  #closeInfo: CloseInfo | null = null;
  #wasOpened = false;
  #failureNoted = false;
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
  #writing = false;
  #noDelay = false;
  /** Whether the host already holds this connection in its list to flush this turn. */
  #flushQueued = false;
  #compressWindow: number | null = null;

  constructor(socket: Deno.Conn, host: ConnectionHost) {
    this.#socket = socket;
    this.#host = host;
    this.remoteAddress = (socket.remoteAddr as Deno.NetAddr).hostname ?? "";
    this.#liveness = new Liveness(host.options, host.now());
  }

  /** The peer address of the TCP connection (before any proxy header is believed). */
  get peerAddress(): string {
    return (this.#socket.remoteAddr as Deno.NetAddr).hostname ?? "";
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
    return this.#queue.size + (batch.owner === this ? batch.length : 0);
  }

  /** Bytes queued for this connection alone (not shared with others), batch included. */
  get privateBytes(): number {
    return this.#queue.privateSize + (batch.owner === this ? batch.length : 0);
  }

  /** Whether its output has waited over `ms` with no write completing: the peer is not reading. */
  isStalled(now: number, ms: number): boolean {
    return this.#liveness.stalledFor(now) > ms;
  }

  /**
   * The deflate window this connection's compressed messages are made with, or null when it
   * gets plain ones only: a broadcast picks its form by this.
   */
  get compressWindow(): number | null {
    return this.#compressWindow;
  }

  get isOpen(): boolean {
    return this.#codec?.state === "open";
  }

  /** Serves the connection until it is closed. Never throws. */
  async run(): Promise<void> {
    try {
      const codec = await this.#handshake();
      if (codec) await this.#readFrames(codec);
    } catch (e) {
      // Reading failed (a reset) or our own code threw outside the event loop: the socket goes.
      if (!this.#socketClosed) this.#host.log.debug(`connection ${this.id}: ${e}`);
    } finally {
      this.#closeSocket();
      if (this.#wasOpened) {
        this.#host.closed(
          this,
          this.#closeInfo ?? { code: CloseCode.ABNORMAL_CLOSURE, reason: "", clean: false },
        );
      }
      this.#host.forget(this);
    }
  }

  subscribe(channel: string): boolean {
    return this.#host.subscribe(this, channel);
  }

  unsubscribe(channel: string): boolean {
    return this.#host.unsubscribe(this, channel);
  }

  send(message: Message): boolean {
    const codec = this.#codec;
    if (!codec) return false;
    const sent = typeof message === "string" ? codec.sendText(message) : codec.sendBinary(message);
    if (sent) this.#host.stats.messagesOut++;
    return sent;
  }

  /**
   * Queues frames framed once for many connections (a broadcast): the same bytes, not copied.
   * Returns false when the connection is not open or was just closed as a slow consumer.
   */
  sendShared(shared: SharedBytes): boolean {
    return this.#codec?.sendEncoded(shared) ?? false;
  }

  close(code: number = CloseCode.NORMAL_CLOSURE, reason = ""): void {
    const codec = this.#codec;
    if (!codec || codec.state !== "open") return;
    codec.close(code, reason);
    this.#liveness.closing(this.#host.now());
  }

  /** Fails the connection with a policy kind (e.g. "rate-limited"), sending its Close. */
  fail(kind: FailureKind, detail?: string): void {
    const codec = this.#codec;
    if (!codec || codec.failure) return;
    codec.fail(kind, detail);
    this.#noteFailure(codec.failure!);
  }

  /**
   * Starts writing what is queued, if not writing already. Returns a promise that settles
   * once that queue is written (or the socket is gone), or null when no write was started.
   */
  flush(): Promise<void> | null {
    this.#flushQueued = false;
    this.#seal();
    if (this.#writing || !this.#queue.hasPending || this.#socketClosed) {
      if (!this.#writing) this.#maybeEndTcp();
      return null;
    }
    return this.#pump();
  }

  /** Enforces deadlines and liveness; called by the server's shared timer. */
  tick(now: number): void {
    if (this.#socketClosed) return;
    const action: LivenessAction = this.#liveness.tick(now, this.bufferedAmount > 0);
    switch (action) {
      case "none":
        return;
      case "ping":
        this.#codec?.sendPing();
        return;
      case "slow-consumer":
        this.#slowConsumer();
        return;
      case "handshake-timeout":
      case "pong-timeout":
      case "close-timeout":
        this.#timedOut(action);
        return;
      default:
        assertNever(action);
    }
  }

  /**
   * Closes this connection as a slow consumer under memory pressure (--max-queue-total): its
   * Close is queued, and TCP is dropped at once so that what it holds is freed now.
   */
  shed(): void {
    this.#slowConsumer();
    this.#closeSocket();
  }

  // ---- the codec's output sink ----

  #frames(parts: readonly Uint8Array[], control: boolean): boolean {
    let size = 0;
    for (const p of parts) size += p.length;
    const limit = this.#host.options.maxQueue;
    if (!control && this.bufferedAmount + size > limit) {
      this.#slowConsumer();
      return false;
    }
    this.#seal();
    this.#queue.push(parts, size);
    this.#markDirty();
    // A peer that pings without reading its pongs (RFC 6455 §5.5.2) is a slow consumer too.
    if (control && this.bufferedAmount > limit) this.#slowConsumer();
    return true;
  }

  #encoded(frames: EncodedFrames): boolean {
    const shared = frames as SharedBytes;
    if (this.bufferedAmount + shared.size > this.#host.options.maxQueue) {
      this.#slowConsumer();
      return false;
    }
    this.#seal();
    this.#queue.pushShared(shared);
    this.#markDirty();
    return true;
  }

  /** A text frame, framed into the shared batch when small. */
  #text(text: string): boolean {
    if (text.length > BATCH_TEXT_LIMIT) return this.#frames(encodeTextFrame(text), false);
    if (batch.owner !== this || batch.length + textFrameBound(text.length) > BATCH_SIZE) {
      if (batch.owner) batch.owner.#seal();
      batch.owner = this;
    }
    const size = encodeTextFrameInto(text, batch.bytes, batch.length);
    if (this.bufferedAmount + size > this.#host.options.maxQueue) {
      this.#slowConsumer();
      return false;
    }
    batch.length += size;
    this.#markDirty();
    return true;
  }

  /** Moves this connection's frames out of the shared batch into its queue, as one entry. */
  #seal(): void {
    if (batch.owner !== this) return;
    const length = batch.length;
    batch.owner = null;
    batch.length = 0;
    if (length === 0) return;
    const next = !this.#writing && !this.#queue.hasPending;
    const bytes = next ? slabCopy(length) : batch.bytes.slice(0, length);
    this.#queue.push([bytes], length);
  }

  #dropBatch(): void {
    if (batch.owner !== this) return;
    batch.owner = null;
    batch.length = 0;
  }

  #markDirty(): void {
    // Once per turn, not once per frame: a burst of lines would list the connection once each.
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      this.#host.markDirty(this);
    }
  }

  // ---- failures ----

  #slowConsumer(): void {
    const codec = this.#codec;
    if (!codec || codec.failure || codec.state === "closed") return;
    this.#dropBatch();
    this.#queue.dropPending();
    codec.fail("slow-consumer");
    const now = this.#host.now();
    this.#liveness.closing(now, Math.min(this.#host.options.closeTimeout, SLOW_CONSUMER_CLOSE_MS));
    this.#noteFailure(codec.failure!);
  }

  #timedOut(kind: "handshake-timeout" | "pong-timeout" | "close-timeout"): void {
    const f = failure(kind);
    this.#closeInfo ??= { code: f.code, reason: f.reason, clean: false };
    this.#host.failed(this, f);
    this.#closeSocket();
  }

  /** STYLE rule 4: our own bug closes this connection with 1011 and keeps serving the rest. */
  #internalError(e: unknown): void {
    const stack = e instanceof Error ? e.stack ?? e.message : String(e);
    this.#host.log.error(`connection ${this.id}: internal error, closing with 1011: ${stack}`);
    const codec = this.#codec;
    if (!codec) {
      this.#closeSocket();
      return;
    }
    this.#dropBatch();
    this.#queue.dropPending();
    codec.fail("internal-error");
    if (codec.failure?.kind === "internal-error") this.#noteFailure(codec.failure);
  }

  #noteFailure(f: Failure): void {
    // Reported once: when failed from outside the read loop, the codec's fail event follows.
    if (this.#failureNoted) return;
    this.#failureNoted = true;
    this.#closeInfo ??= { code: f.code, reason: f.reason, clean: false };
    this.#liveness.closing(this.#host.now());
    this.#host.failed(this, f);
    this.#markDirty();
  }

  // ---- reading ----

  async #handshake(): Promise<Codec | null> {
    const reader = new RequestReader();
    for (;;) {
      const n = await this.#socket.read(this.#buf);
      if (n === null) return null;
      const result = reader.receive(this.#buf.subarray(0, n));
      if (result === NEED_DATA) continue;
      if ("status" in result) return await this.#refuse(result);
      const route = this.#host.route(result.request);
      if (route.kind === "resource") return await this.#answer(route.response);
      const ws = validateUpgrade(result.request);
      if ("status" in ws) return await this.#refuse(ws);
      const trailing = result.trailing.length > 0 ? result.trailing.slice() : null;
      this.#target = result.request.target;
      this.#head = result.head;
      this.#headers = result.request.headers;
      const decision = await this.#host.decideUpgrade(this, { request: result.request, ws });
      if (this.#socketClosed) return null;
      if (!decision.accept) return await this.#refuse(decision.error);
      return await this.#accept({ key: ws.key, decision, trailing });
    }
  }

  async #accept(
    { key, decision, trailing }: {
      key: string;
      decision: UpgradeDecision & { accept: true };
      trailing: Uint8Array | null;
    },
  ): Promise<Codec> {
    this.protocol = decision.protocol;
    this.data = decision.data;
    this.user = decision.user ?? null;
    const o = this.#host.options;
    // RFC 7692 §5.1: accept at most one permessage-deflate offer, and only one we can honour.
    const deflate = o.compression ? negotiateDeflate(this.#headers?.get(EXTENSIONS_HEADER)) : null;
    this.deflate = deflate;
    this.#compressWindow = deflate?.compressWindowBits ?? null;
    this.#headers = null;
    await this.#writeAll(
      acceptResponse(key, {
        protocol: decision.protocol || undefined,
        extensions: deflate?.header,
      }),
    );
    const codec = new Codec({
      maxMessageSize: o.maxMessageSize,
      deflate,
      compression: { threshold: o.compressionThreshold, level: o.compressionLevel },
      compressionCounter: this.#host.stats,
      sink: {
        frames: (parts, control) => this.#frames(parts, control),
        encoded: (frames) => this.#encoded(frames),
        text: (text) => this.#text(text),
      },
    });
    this.#codec = codec;
    this.#buf = new Uint8Array(IDLE_READ);
    this.#liveness.opened(this.#host.now());
    this.#wasOpened = true;
    await this.#host.opened(this);
    if (trailing) {
      codec.receive(trailing);
      await this.#process(codec);
    }
    return codec;
  }

  /** Answers a refused handshake, then ends TCP once the peer has read it. */
  async #refuse(error: HandshakeError): Promise<null> {
    this.#host.refused(this, error);
    return await this.#answer(errorResponse(error));
  }

  async #answer(response: Uint8Array): Promise<null> {
    this.#liveness.closing(this.#host.now());
    await this.#writeAll(response);
    await this.#lingerUntilEof();
    return null;
  }

  async #readFrames(codec: Codec): Promise<void> {
    while (!this.#socketClosed) {
      // Read here directly: an idle connection then keeps one fewer suspended async frame.
      let n: number | null;
      try {
        n = await this.#socket.read(this.#buf);
      } catch {
        n = null; // A reset, or our own close of the socket.
      }
      if (n === null) {
        this.#eof = true;
        codec.receiveEof();
      } else {
        this.#liveness.heard();
        this.#host.stats.bytesIn += n;
        codec.receive(this.#buf.subarray(0, n));
      }
      try {
        await this.#process(codec);
      } catch (e) {
        this.#internalError(e);
      }
      if (this.#eof) break;
      if (n !== null) this.#resizeBuffer(n);
    }
    // Whatever is queued (a Close echo) still goes out before the socket is closed.
    this.flush();
    this.#maybeEndTcp();
  }

  /** Pulls the codec's events one at a time and hands each to the host, in order. */
  async #process(codec: Codec): Promise<void> {
    for (let event = codec.nextEvent(); event !== null; event = codec.nextEvent()) {
      switch (event.type) {
        case "close":
          this.#closeInfo ??= {
            code: event.code,
            reason: event.reason,
            clean: event.code !== CloseCode.ABNORMAL_CLOSURE,
          };
          this.#liveness.closing(this.#host.now());
          this.#markDirty();
          continue;
        case "fail":
          this.#noteFailure(event);
          continue;
        case "pong":
          continue;
        case "text":
        case "binary":
        case "ping": {
          const pending = this.#host.event(this, event);
          if (pending) await pending;
          continue;
        }
        default:
          assertNever(event);
      }
    }
  }

  /** Adapts the read buffer: grow while reads fill it, back to small when traffic is light. */
  #resizeBuffer(n: number): void {
    const size = this.#buf.length;
    if (n === size && size < MAX_READ) this.#buf = new Uint8Array(size * 4);
    else if (n < MIN_READ && size > MIN_READ) this.#buf = new Uint8Array(MIN_READ);
  }

  // ---- writing and the end of TCP ----

  async #pump(): Promise<void> {
    this.#writing = true;
    if (!this.#noDelay) this.#setNoDelay();
    try {
      for (;;) {
        // Frames sent while a write was in flight may still sit in the batch.
        this.#seal();
        const chunks = this.#queue.take();
        if (!chunks) break;
        try {
          for (const chunk of chunks) await this.#writeAll(chunk);
        } finally {
          this.#queue.written();
        }
        this.#liveness.wrote();
        this.#drained();
      }
    } catch (e) {
      this.#host.log.debug(`connection ${this.id}: write failed: ${e}`);
      this.#queue.dropPending();
      this.#closeSocket();
    } finally {
      this.#writing = false;
      this.#maybeEndTcp();
    }
  }

  /** Tells the host the queue has room; what it queues then is taken by the pump's next turn. */
  #drained(): void {
    try {
      this.#host.drained(this);
    } catch (e) {
      this.#internalError(e);
    }
  }

  /**
   * Once the codec is done and its last frames are written, TCP ends. After a clean closing
   * handshake (or the peer's EOF) the server closes first (RFC 6455 §7.1.1). After a failure
   * the peer may still be sending: we half-close and read until its FIN, so that our Close is
   * not lost to a reset; the close deadline bounds the wait.
   */
  #maybeEndTcp(): void {
    const codec = this.#codec;
    if (this.#socketClosed || !codec?.closeExpected) return;
    if (this.#writing || this.#queue.hasPending || batch.owner === this) return;
    if (codec.closedCleanly || this.#eof) {
      this.#closeSocket();
    } else if (!this.#halfClosed) {
      this.#halfClosed = true;
      this.#socket.closeWrite().catch(() => this.#closeSocket());
    }
  }

  /** After a refusal: half-close, and read until the peer closes (bounded by the deadline). */
  async #lingerUntilEof(): Promise<void> {
    try {
      await this.#socket.closeWrite();
      while (!this.#socketClosed && (await this.#socket.read(this.#buf)) !== null) {
        // Discard: only the peer's FIN is awaited.
      }
    } catch {
      // The peer reset, or the deadline closed the socket.
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
      (this.#socket as Deno.TcpConn).setNoDelay(true);
    } catch { /* the peer is already gone; the write will say so */ }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      done += await this.#socket.write(done === 0 ? bytes : bytes.subarray(done));
    }
    this.#host.stats.bytesOut += done;
  }

  #closeSocket(): void {
    if (this.#socketClosed) return;
    this.#socketClosed = true;
    this.#dropBatch();
    this.#queue.dropPending();
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }
}

/** The first `length` bytes of the batch, copied into a fresh view of the slab. */
function slabCopy(length: number): Uint8Array {
  if (slab.used + length > slab.bytes.length) {
    slab.bytes = new Uint8Array(BATCH_SIZE);
    slab.used = 0;
  }
  const view = slab.bytes.subarray(slab.used, slab.used + length);
  view.set(batch.bytes.subarray(0, length));
  slab.used += length;
  return view;
}

/** The pathname `new URL(target, base)` gives, without parsing a URL for the usual plain path. */
function pathOf(target: string): string {
  if (target === "") return "";
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  if (PLAIN_PATH.test(path)) return path;
  return new URL(target, "http://localhost").pathname;
}

function assertNever(value: never): never {
  throw new Error(`Unexpected value ${JSON.stringify(value)}`);
}

// Owns the running server: the listener and its accept loop, the set of clients, broadcast,
// the upgrade policy, dispatch to handlers, the shared timers, the FIFO and shutdown.

import { concatBytes } from "../protocol/bytes.ts";
import { Client, type ClientHost, type UpgradeAsked, type UpgradeDecision } from "./connection.ts";
import type { CodecEvent } from "../protocol/codec.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import { FifoReader } from "../sources/fifo.ts";
import { encodeFrame, encodeTextFrame, Opcode } from "../protocol/frame.ts";
import type {
  CloseInfo,
  Connection,
  Handlers,
  Logger,
  Message,
  Server,
  UpgradeRequest,
  UpgradeResult,
} from "../api/handlers.ts";
import { errorMessage } from "../api/log.ts";
import type { Options } from "../api/options.ts";

const ACCEPT_BACKOFF_MIN_MS = 10;
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** While this many bytes wait in client queues, the FIFO reader pauses (up to FIFO_PAUSE_MS). */
const FIFO_HIGH_WATER = 64 * 1024 * 1024;
const FIFO_PAUSE_MS = 1000;
/** Most clients whose writes are started at once (see #flushDirty). */
const FLUSH_WINDOW = 256;
const FLUSH_WINDOW_WAIT_MS = 5;
/** One FIFO read's frames up to this size are joined into one buffer shared by all clients. */
const SHARED_BATCH_LIMIT = 1024 * 1024;

/** Counters for logs and tests. */
export interface ServerStats {
  accepted: number;
  opened: number;
  slowConsumers: number;
  fifoLines: number;
}

/** The push server: create, `start()`, and later `shutdown()`. */
export class PushServer implements Server, ClientHost {
  readonly options: Options;
  readonly log: Logger;
  readonly stats: ServerStats = { accepted: 0, opened: 0, slowConsumers: 0, fifoLines: 0 };
  readonly #handlers: Handlers;
  readonly #clients = new Set<Client>();
  readonly #open = new Set<Client>();
  #dirty: Client[] = [];
  #flushScheduled = false;
  /** Clients waiting for a flush window (see #flushDirty); entries before #flushHead are done. */
  #flushQueue: Client[] = [];
  #flushHead = 0;
  #flushing = false;
  #listener: Deno.TcpListener | null = null;
  #fifo: FifoReader | null = null;
  #timers: ReturnType<typeof setInterval>[] = [];
  #loopBusy = false;
  #stopping = false;

  constructor(options: Options, { handlers, log }: { handlers: Handlers; log: Logger }) {
    this.options = options;
    this.#handlers = handlers;
    this.log = log;
  }

  get connections(): ReadonlySet<Connection> {
    return this.#open;
  }

  /**
   * Listens, runs `start`, then accepts connections and reads the FIFO. Connections that arrive
   * while an async `start` runs wait in the listen backlog. Returns the bound address.
   */
  async start(): Promise<Deno.NetAddr> {
    const o = this.options;
    this.#listener = Deno.listen({ hostname: o.host, port: o.port });
    const addr = this.#listener.addr;
    this.log.info(`listening on ${addr.hostname}:${addr.port}, reading FIFO ${o.fifo}`);
    if (this.#handlers.start) {
      await this.#call({ event: "start" }, () => this.#handlers.start!(this));
    }
    this.#acceptLoop(this.#listener);
    this.#timers.push(setInterval(() => this.#housekeeping(), housekeepingPeriod(o)));
    if (this.#handlers.loop) this.#timers.push(setInterval(() => this.#loop(), o.tick));
    this.#fifo = new FifoReader(o.fifo, {
      maxLineBytes: o.maxMessageSize,
      log: this.log,
      onBatch: (lines) => this.#fifoBatch(lines),
    });
    this.#fifo.run();
    return addr;
  }

  broadcast(message: Message, filter?: (conn: Connection) => boolean): number {
    // Encoded once: every client's queue holds the same bytes.
    const frame = typeof message === "string"
      ? encodeTextFrame(message)
      : encodeFrame(Opcode.BINARY, message);
    let sent = 0;
    for (const client of this.#open) {
      if (filter && !this.#safeFilter(filter, client)) continue;
      if (client.enqueue(frame)) sent++;
    }
    return sent;
  }

  send(conn: Connection, message: Message): boolean {
    return conn.send(message);
  }

  close(conn: Connection, code?: number, reason?: string): void {
    conn.close(code, reason);
  }

  /**
   * Stops accepting and reading the FIFO, runs `shutdown`, sends 1001 to every client and
   * waits up to --shutdown-timeout for them to close.
   */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.log.info("shutting down");
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    // Lines already read are delivered before the clients are told to go. Only the batch in
    // flight is awaited: with no writer, the reader itself stays blocked in open(2) for good.
    await this.#bounded("delivering FIFO lines", this.#fifo?.stop());
    if (this.#handlers.shutdown) {
      const h = this.#handlers.shutdown;
      await this.#bounded("handler shutdown", this.#call({ event: "shutdown" }, () => h(this)));
    }
    for (const t of this.#timers) clearInterval(t);
    for (const client of this.#open) client.close(CloseCode.GOING_AWAY, "server shutting down");
    this.#flushDirty();
    const deadline = Date.now() + this.options.shutdownTimeout;
    while (this.#clients.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (this.#clients.size > 0) {
      this.log.info(`${this.#clients.size} clients did not close in time; dropping them`);
    }
  }

  /** Waits for `pending`, but no longer than --shutdown-timeout: shutdown always ends. */
  async #bounded(what: string, pending: Promise<void> | undefined): Promise<void> {
    if (!pending) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.options.shutdownTimeout);
    });
    const outcome = await Promise.race([pending, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      this.log.warn(`${what} took over ${this.options.shutdownTimeout} ms; shutting down anyway`);
    }
  }

  // ---- ClientHost ----

  async decideUpgrade(client: Client, asked: UpgradeAsked): Promise<UpgradeDecision> {
    const { ws } = asked;
    const req = this.#upgradeRequest(client, asked);
    client.remoteAddress = req.remoteAddress;
    const allowed = this.options.allowedOrigins;
    if (allowed.length > 0 && !allowed.includes(req.origin ?? "")) {
      return refuse(403, `Origin ${req.origin ?? "(none)"} is not allowed`);
    }
    let result: UpgradeResult = undefined;
    if (this.#handlers.upgrade) {
      const outcome = await this.#runUpgrade(client, req);
      if ("refuse" in outcome) return outcome.refuse;
      result = outcome.result;
    }
    if (result?.reject) return refuse(result.reject.status, result.reject.body ?? "Refused");
    const protocol = result?.protocol ?? this.#pickProtocol(ws.protocols);
    if (protocol && !ws.protocols.includes(protocol)) {
      this.log.error(
        `upgrade handler chose subprotocol ${protocol}, which the client did not offer`,
      );
      return refuse(500, "Internal server error");
    }
    return { accept: true, protocol: protocol ?? "", data: result?.data };
  }

  opened(client: Client): void | Promise<void> {
    this.#open.add(client);
    this.stats.opened++;
    this.log.debug(`connection ${client.id} open from ${client.remoteAddress} ${client.path}`);
    const h = this.#handlers.open;
    if (h) return this.#call({ event: "open", conn: client.id }, () => h(client, this));
  }

  event(client: Client, event: CodecEvent): void | Promise<void> {
    const h = this.#handlers;
    switch (event.type) {
      case "text":
        if (h.text) {
          return this.#call(
            { event: "text", conn: client.id },
            () => h.text!(client, event.data, this),
          );
        }
        return;
      case "binary":
        if (h.binary) {
          return this.#call(
            { event: "binary", conn: client.id },
            () => h.binary!(client, event.data, this),
          );
        }
        return;
      case "ping":
        if (h.ping) {
          return this.#call(
            { event: "ping", conn: client.id },
            () => h.ping!(client, event.data, this),
          );
        }
        return;
      case "pong":
      case "close":
      case "fail":
        return;
      default:
        return assertNever(event);
    }
  }

  closed(client: Client, info: CloseInfo): void {
    if (!this.#open.delete(client)) return;
    this.log.debug(`connection ${client.id} closed: ${info.code} ${info.reason}`);
    const h = this.#handlers.close;
    if (h) this.#call({ event: "close", conn: client.id }, () => h(client, info, this));
  }

  forget(client: Client): void {
    this.#clients.delete(client);
  }

  markDirty(client: Client): void {
    this.#dirty.push(client);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flushDirty());
    }
  }

  slowConsumer(client: Client): void {
    this.stats.slowConsumers++;
    this.log.warn(
      `connection ${client.id} from ${client.remoteAddress}: closed as a slow consumer ` +
        `(over ${this.options.maxQueue} bytes queued); its queued messages are dropped`,
    );
  }

  // ---- internals ----

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    let backoff = ACCEPT_BACKOFF_MIN_MS;
    while (!this.#stopping) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (this.#stopping || e instanceof Deno.errors.BadResource) return;
        // ENOTCONN from a client that reset early, EMFILE when out of descriptors: keep serving.
        this.log.warn(`accept failed: ${errorMessage(e)}; retrying in ${backoff} ms`);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MIN_MS;
      this.#serve(conn);
    }
  }

  #serve(conn: Deno.TcpConn): void {
    this.stats.accepted++;
    const client = new Client(conn, this);
    this.#clients.add(client);
    client.run();
  }

  /**
   * Starts the writes of every client that queued frames this turn. Up to FLUSH_WINDOW go at
   * once; more are started a window at a time, each window once the previous one's writes
   * have settled (or FLUSH_WINDOW_WAIT_MS passed, so a stalled socket holds no one up).
   * Deno's cost per async write grows with the writes pending at once: at 10,000 clients
   * one 100 B line cost ~20-30 µs per write all at once, ~12-14 µs in windows of 100-300.
   */
  #flushDirty(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    if (!this.#flushing && dirty.length <= FLUSH_WINDOW) {
      for (const client of dirty) client.flush();
      return;
    }
    // Each client is listed at most once (see Client#flushQueued), so this stays bounded.
    for (const client of dirty) this.#flushQueue.push(client);
    if (!this.#flushing) this.#flushWindows();
  }

  async #flushWindows(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#flushHead < this.#flushQueue.length) {
        const end = Math.min(this.#flushHead + FLUSH_WINDOW, this.#flushQueue.length);
        const writes: Promise<void>[] = [];
        for (let i = this.#flushHead; i < end; i++) {
          const pending = this.#flushQueue[i].flush();
          if (pending) writes.push(pending);
        }
        this.#flushHead = end;
        if (writes.length > 0) await settledOrTimeout(writes, FLUSH_WINDOW_WAIT_MS);
      }
    } finally {
      this.#flushQueue = [];
      this.#flushHead = 0;
      this.#flushing = false;
    }
  }

  #housekeeping(): void {
    const now = Date.now();
    for (const client of this.#clients) client.tick(now);
  }

  #loop(): void {
    if (this.#loopBusy || this.#stopping) return;
    const pending = this.#call({ event: "loop" }, () => this.#handlers.loop!(this));
    if (pending) {
      this.#loopBusy = true;
      pending.finally(() => this.#loopBusy = false);
    }
  }

  async #fifoBatch(lines: string[]): Promise<void> {
    this.stats.fifoLines += lines.length;
    const h = this.#handlers.fifo;
    if (!h) {
      this.#broadcastLines(lines);
    } else {
      for (const line of lines) {
        const pending = this.#call({ event: "fifo" }, () => h(line, this));
        if (pending) await pending;
      }
    }
    this.#flushDirty();
    await this.#backpressure();
  }

  /**
   * Broadcasts lines as `broadcast` would, one at a time, but frames them all once into one
   * buffer that every client's queue shares: one enqueue and one write per client per read.
   */
  #broadcastLines(lines: string[]): void {
    const frames: Uint8Array[] = [];
    let total = 0;
    for (const line of lines) {
      for (const part of encodeTextFrame(line)) {
        frames.push(part);
        total += part.length;
      }
    }
    const shared = total <= SHARED_BATCH_LIMIT ? [concatBytes(frames, total)] : frames;
    for (const client of this.#open) client.enqueue(shared);
  }

  /** Pauses the FIFO while too much waits in client queues, for at most FIFO_PAUSE_MS. */
  async #backpressure(): Promise<void> {
    const deadline = Date.now() + FIFO_PAUSE_MS;
    while (this.#queuedBytes() > FIFO_HIGH_WATER && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  #queuedBytes(): number {
    let total = 0;
    for (const client of this.#open) total += client.bufferedAmount;
    return total;
  }

  #upgradeRequest(
    client: Client,
    { request, ws }: UpgradeAsked,
  ): UpgradeRequest {
    return {
      method: request.method,
      path: client.path,
      // Parsed only if the handler asks: most never look at the query.
      get query() {
        return client.query;
      },
      headers: request.headers,
      cookies: parseCookies(request.headers.get("cookie")),
      origin: request.headers.get("origin"),
      remoteAddress: this.#remoteAddress(client.peerAddress, request.headers),
      protocols: ws.protocols,
    };
  }

  #remoteAddress(peer: string, headers: ReadonlyMap<string, string>): string {
    if (!this.options.trustedProxies.includes(peer)) return peer;
    const real = headers.get("x-real-ip")?.trim();
    if (real) return real;
    // The rightmost entry is the one the trusted proxy itself appended.
    const forwarded = headers.get("x-forwarded-for")?.split(",").map((s) => s.trim()).filter(
      Boolean,
    );
    return forwarded?.length ? forwarded[forwarded.length - 1] : peer;
  }

  #pickProtocol(offered: readonly string[]): string | undefined {
    return this.options.subprotocols.find((p) => offered.includes(p));
  }

  async #runUpgrade(
    client: Client,
    req: UpgradeRequest,
  ): Promise<{ result: UpgradeResult } | { refuse: UpgradeDecision }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.options.upgradeTimeout);
    });
    try {
      const result = await Promise.race([
        Promise.resolve().then(() => this.#handlers.upgrade!(req)),
        timeout,
      ]);
      if (result === "timeout") {
        this.log.warn(
          `upgrade handler took over ${this.options.upgradeTimeout} ms (connection ${client.id}); answered 503`,
        );
        return { refuse: refuse(503, "The server is busy; try again") };
      }
      return { result };
    } catch (e) {
      this.log.error(`handler upgrade failed (connection ${client.id}): ${errorMessage(e)}`);
      return { refuse: refuse(500, "Internal server error") };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one handler; logs (never rethrows) a throw or rejection. Returns a promise only if async. */
  #call(site: HandlerSite, fn: () => unknown): Promise<void> | undefined {
    const fail = (e: unknown) => {
      const where = site.conn === undefined ? "" : ` (connection ${site.conn})`;
      this.log.error(`handler ${site.event} failed${where}: ${errorMessage(e)}`);
    };
    try {
      const result = fn();
      if (result instanceof Promise) return result.then(() => {}, fail);
    } catch (e) {
      fail(e);
    }
    return undefined;
  }

  #safeFilter(filter: (conn: Connection) => boolean, client: Client): boolean {
    try {
      return filter(client);
    } catch (e) {
      this.log.error(`broadcast filter failed (connection ${client.id}): ${errorMessage(e)}`);
      return false;
    }
  }
}

/** Resolves once every promise settled, or after `ms`, whichever is first. Never rejects. */
async function settledOrTimeout(pending: Promise<void>[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  try {
    await Promise.race([Promise.allSettled(pending), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Which handler runs, and for which connection: named in the log line if it fails. */
interface HandlerSite {
  readonly event: string;
  readonly conn?: number;
}

function refuse(status: number, message: string): UpgradeDecision {
  return { accept: false, error: { status, message } };
}

function assertNever(value: never): never {
  throw new Error(`Unexpected event ${JSON.stringify(value)}`);
}

/** Parses a Cookie header ("a=1; b=2"); values are percent-decoded where valid. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      value = value.slice(1, -1);
    }
    try {
      value = decodeURIComponent(value);
    } catch { /* keep it as sent */ }
    if (!Object.hasOwn(out, name)) out[name] = value;
  }
  return out;
}

/** The shared timer runs often enough to honour the shortest timeout within a quarter of it. */
function housekeepingPeriod(o: Options): number {
  const shortest = Math.min(o.handshakeTimeout, o.pingInterval, o.pongTimeout, o.closeTimeout);
  return Math.max(20, Math.min(1000, Math.floor(shortest / 4)));
}

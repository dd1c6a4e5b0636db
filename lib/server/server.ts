// Owns the running server as a composition: the listener and its accept loop, the hub of
// connections, handler dispatch, the FIFO source, the shared timer, and shutdown. Policy lives in
// lib/policy/, the protocol in lib/protocol/; this file wires them to sockets and time.

import type {
  CloseInfo,
  Connection,
  Handlers,
  Logger,
  Message,
  PresenceQuery,
  Server,
  UpgradeRequest,
} from "../api/handlers.ts";
import { describeError, errorMessage } from "../api/log.ts";
import type { Options } from "../api/options.ts";
import { type Resource, type Route, route } from "../policy/router.ts";
import {
  checkOrigin,
  clientAddress,
  decide,
  parseCookies,
  refuse,
  type UpgradeDecision,
} from "../policy/upgrade_policy.ts";
import type { CodecEvent } from "../protocol/codec.ts";
import { CloseCode } from "../protocol/close_codes.ts";
import type { Failure } from "../protocol/failures.ts";
import { BroadcastFrames, type BroadcastSettings } from "../protocol/compressed_frames.ts";
import type { HandshakeError, HttpRequest } from "../protocol/handshake.ts";
import { DEFAULT_HISTORY_LIMITS } from "../channels/history.ts";
import type { UpgradeSettings } from "../policy/upgrade_policy.ts";
import { DEFAULT_DRAIN_MS, FifoReader, type FifoState } from "../sources/fifo.ts";
import { DEFAULT_LOG_LIMIT, LogLimiter } from "../policy/log_limiter.ts";
import { ClientConnection, type ConnectionHost, type UpgradeAsked } from "./connection.ts";
import { Dispatch } from "./dispatch.ts";
import { Hub } from "./hub.ts";
import { ChannelHub } from "./channel_hub.ts";
import { PUSH_SUBPROTOCOL } from "../channels/protocol.ts";
import { ChannelLog, MEMORY_ONLY } from "../store/channel_log.ts";
import { Access } from "../auth/access.ts";
import type { TokenKeys } from "../auth/token.ts";
import { parseGrants } from "../policy/grants.ts";
import { Operability } from "../admin/operability.ts";
import { fifoProblems } from "../admin/readiness.ts";
import { PushStats } from "../metrics/stats.ts";
import { RATE_LIMITED_CLOSE } from "../policy/message_rate.ts";

/** --history-fsync as SQLite's synchronous level (auto: NORMAL when a reboot can be detected). */
const FSYNC_LEVEL = { auto: "auto", on: "full", off: "normal" } as const;

const ACCEPT_BACKOFF_MIN_MS = 10;
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** While most clients are behind, the FIFO reader waits, at most this long per read. */
const FIFO_PAUSE_MS = 1000;
const FIFO_PAUSE_POLL_MS = 5;
/** One FIFO read's frames up to this size are joined into one buffer shared by all clients. */
const SHARED_BATCH_LIMIT = 1024 * 1024;
const SHUTDOWN_POLL_MS = 20;
/** How often expired channel history is dropped. */
const HISTORY_TRIM_MS = 60_000;

/** What the server is built from, besides its options. */
export interface ServerParts {
  readonly handlers: Handlers;
  readonly log: Logger;
  /** Fixed resources served on the public port by path (a page, the browser client). */
  readonly resources?: ReadonlyMap<string, Resource>;
  /** Keys that push.v1 tokens are checked with; tokens are off without them. */
  readonly tokenKeys?: TokenKeys;
}

/** The push server: create, `start()`, and later `shutdown()`. */
export class PushServer implements Server, ConnectionHost {
  readonly options: Options;
  readonly log: Logger;
  /** Every counter the metrics report; plain numbers on the hot path. */
  readonly stats = new PushStats();
  readonly #hub: Hub;
  #ops: Operability | null = null;
  #channels: ChannelHub<ClientConnection> | null = null;
  readonly #tokenKeys: TokenKeys | undefined;
  #channelLog: ChannelLog | null = null;
  /** FIFO lines to broadcast, held so that one read's run of them is framed as one batch. */
  #pendingLines: string[] = [];
  readonly #dispatch: Dispatch;
  readonly #resources: ReadonlyMap<string, Resource>;
  #listener: Deno.TcpListener | null = null;
  #fifo: FifoReader | null = null;
  #timers: ReturnType<typeof setInterval>[] = [];
  #loopBusy = false;
  #stopping = false;
  /** Refusals are logged at info, at most a few per window per kind, then summarised. */
  readonly #refusals = new LogLimiter(DEFAULT_LOG_LIMIT);

  /**
   * The upgrade rules' settings: --subprotocol, then push.v1 (the channels protocol). Made at
   * each handshake from the three options it needs, not from a spread of every option. Not a
   * field: one more field on this object measured W1 at 1,000 clients 6–10% slower (A/B), as
   * V8 moved hot fields out of the object.
   */
  get #upgradeSettings(): UpgradeSettings {
    const o = this.options;
    return {
      allowedOrigins: o.allowedOrigins,
      subprotocols: [...o.subprotocols, PUSH_SUBPROTOCOL],
      trustedProxies: o.trustedProxies,
    };
  }

  constructor(options: Options, { handlers, log, resources, tokenKeys }: ServerParts) {
    this.#tokenKeys = tokenKeys;
    this.options = options;
    this.log = log;
    this.#resources = resources ?? new Map();
    this.#hub = new Hub({ log, maxQueueTotal: options.maxQueueTotal });
    this.#dispatch = new Dispatch(handlers, {
      server: this,
      log,
      upgradeTimeout: options.upgradeTimeout,
      stats: this.stats,
      // Durations feed the /metrics histogram: measured only when something can scrape it.
      timed: options.adminListen !== undefined,
    });
  }

  get connections(): ReadonlySet<Connection> {
    return this.#hub.open;
  }

  publish(channel: string, data: unknown): number {
    this.#flushPendingLines();
    const offset = this.#channelHub().publish(channel, data);
    this.stats.publications++;
    return offset;
  }

  subscribe(conn: ClientConnection, channel: string): boolean {
    return this.#channelHub().subscribe(conn, channel);
  }

  unsubscribe(conn: ClientConnection, channel: string): boolean {
    return this.#channelHub().unsubscribe(conn, channel);
  }

  get presence(): PresenceQuery | null {
    return this.#channels?.access?.presence ?? null;
  }

  /** Whether channel history is written to disk (false: memory only). */
  get durableHistory(): boolean {
    return this.#channelLog?.durable ?? false;
  }

  /** The admin listener's address, or null without --admin-listen. */
  get adminAddress(): Deno.NetAddr | null {
    return this.#ops?.admin?.addr ?? null;
  }

  /** Whether the FIFO is open, waiting for a writer, or unreadable (for health checks). */
  get fifoState(): FifoState {
    return this.#fifo?.state ?? { state: "waiting", lastError: null };
  }

  /**
   * Listens, runs `start`, then accepts connections and reads the FIFO. Connections that arrive
   * while an async `start` runs wait in the listen backlog. Returns the bound address.
   */
  async start(): Promise<Deno.NetAddr> {
    const o = this.options;
    this.#listener = Deno.listen({ hostname: o.host, port: o.port });
    this.#openChannels(this.#openAccess());
    const addr = this.#listener.addr;
    this.log.info(`listening on ${addr.hostname}:${addr.port}, reading FIFO ${o.fifo}`);
    const ops = await Operability.start(o, {
      log: this.log,
      stats: this.stats,
      sources: {
        connectionsOpen: () => this.#hub.open.size,
        channels: () => this.#channels?.subscriptions.channelCount ?? 0,
        subscriptions: () => this.#channels?.subscriptions.size ?? 0,
        bytesQueued: () => this.#hub.queuedBytes(),
        fifoOpen: () => this.fifoState.state === "open",
        historyMessages: () => this.#channelLog?.history.size ?? 0,
        historyBytes: () => this.#channelLog?.history.bytes ?? 0,
        historyDurable: () => this.durableHistory,
      },
      readiness: () => this.#readinessProblems(),
      warnings: () => this.#readinessWarnings(),
      status: {
        mostQueued: (limit) =>
          [...this.#hub.open].filter((c) => c.bufferedAmount > 0)
            .sort((a, b) => b.bufferedAmount - a.bufferedAmount).slice(0, limit)
            .map((c) => ({ id: c.id, remote: c.remoteAddress, queuedBytes: c.bufferedAmount })),
        fifo: () => ({ path: o.fifo, open: this.fifoState.state === "open" }),
      },
    });
    if ("error" in ops) {
      this.#listener.close();
      throw new AdminListenError(ops.error);
    }
    this.#ops = ops;
    if (this.#dispatch.has("start")) {
      await this.#dispatch.call({ event: "start" }, () => this.#handlers().start!(this));
    }
    this.#acceptLoop(this.#listener);
    this.#timers.push(setInterval(() => this.#housekeeping(), housekeepingPeriod(o)));
    if (this.#dispatch.has("loop")) this.#timers.push(setInterval(() => this.#loop(), o.tick));
    this.#timers.push(setInterval(() => this.#channels?.trim(), HISTORY_TRIM_MS));
    this.#fifo = new FifoReader(o.fifo, {
      maxLineBytes: o.maxMessageSize,
      log: this.log,
      onBatch: (lines) => this.#fifoBatch(lines),
      onDropped: (reason) => this.stats.fifoDropped.add(reason),
    });
    this.#fifo.run();
    return addr;
  }

  broadcast(message: Message, filter?: (conn: Connection) => boolean): number {
    // Encoded once per form (plain, compressed): every client's queue holds the same bytes.
    const frames = new BroadcastFrames([message], this.#compression());
    const sent = this.#hub.broadcast(frames, filter && ((conn) => this.#safeFilter(filter, conn)));
    this.stats.messagesOut += sent;
    this.stats.compressions += frames.compressions;
    return sent;
  }

  /** How broadcasts compress for permessage-deflate clients. */
  #compression(): BroadcastSettings {
    const o = this.options;
    return { threshold: o.compressionThreshold, level: o.compressionLevel };
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
    // What writers already put in the pipe is read and delivered before the clients are told
    // to go, bounded in time: a writer whose write succeeded counts its lines as accepted.
    const drainMs = Math.min(DEFAULT_DRAIN_MS, this.options.shutdownTimeout);
    await this.#bounded("delivering FIFO lines", this.#fifo?.stop({ drainMs }));
    if (this.#dispatch.has("shutdown")) {
      await this.#bounded(
        "handler shutdown",
        this.#dispatch.call({ event: "shutdown" }, () => this.#handlers().shutdown!(this)),
      );
    }
    for (const t of this.#timers) clearInterval(t);
    // The timer still enforces close deadlines while we wait.
    this.#timers = [setInterval(() => this.#hub.tick(Date.now()), SHUTDOWN_POLL_MS)];
    for (const conn of this.#hub.open) conn.close(CloseCode.GOING_AWAY, "server shutting down");
    this.#hub.flush();
    const deadline = Date.now() + this.options.shutdownTimeout;
    while (this.#hub.all.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_POLL_MS));
    }
    for (const t of this.#timers) clearInterval(t);
    for (const line of this.#refusals.drain(Date.now())) this.log.info(line);
    await this.#ops?.close();
    this.#channelLog?.close();
    const left = this.#hub.all.size;
    if (left > 0) {
      this.log.info(`${left} ${left === 1 ? "client" : "clients"} did not close in time; dropped`);
    }
  }

  // ---- ConnectionHost ----

  now(): number {
    return Date.now();
  }

  route(request: HttpRequest): Route {
    return route(request, this.#resources);
  }

  async decideUpgrade(
    conn: ClientConnection,
    { request, ws }: UpgradeAsked,
  ): Promise<UpgradeDecision> {
    const req = this.#upgradeRequest(conn, { request, protocols: ws.protocols });
    conn.remoteAddress = req.remoteAddress;
    if (this.#ops) {
      const admission = this.#ops.admit(req.remoteAddress, Date.now());
      if (!admission.ok) return refuse(admission.status, admission.body);
      conn.admitted = req.remoteAddress;
    }
    const origin = checkOrigin(this.options, req.origin);
    if (origin) return origin;
    const ran = await this.#dispatch.upgrade(req, conn.id);
    if ("refuse" in ran) return ran.refuse;
    const decision = decide(this.#upgradeSettings, { answer: ran.answer, offered: ws.protocols });
    if (
      this.#tokenKeys !== undefined && "accept" in decision && decision.accept &&
      decision.protocol !== PUSH_SUBPROTOCOL
    ) {
      // With tokens on, only push.v1 (which carries the token) may connect.
      return refuse(401, "A token is required: connect with subprotocol push.v1");
    }
    if ("badProtocol" in decision) {
      this.log.error(
        `upgrade handler chose subprotocol ${decision.badProtocol}, which the client did not offer`,
      );
      return refuse(500, "Internal server error");
    }
    return decision;
  }

  opened(conn: ClientConnection): void | Promise<void> {
    this.#hub.opened(conn);
    if (conn.protocol === PUSH_SUBPROTOCOL) this.#channelHub().open(conn, conn.user ?? undefined);
    this.stats.handshakes.add(101);
    conn.rate = this.#ops?.messageRate(Date.now()) ?? null;
    this.log.debug(`connection ${conn.id} open from ${conn.remoteAddress} ${conn.path}`);
    if (!this.#dispatch.has("open")) return;
    return this.#dispatch.call(
      { event: "open", conn: conn.id },
      () => this.#handlers().open!(conn, this),
    );
  }

  event(conn: ClientConnection, event: CodecEvent): void | Promise<void> {
    switch (event.type) {
      case "text":
      case "binary":
        this.stats.messagesIn++;
        if (conn.rate?.message(Date.now()) === "close") {
          this.#ops?.rateLimited({ id: conn.id, remote: conn.remoteAddress }, Date.now());
          conn.fail("rate-limited", RATE_LIMITED_CLOSE.reason);
          return;
        }
        if (conn.protocol === PUSH_SUBPROTOCOL) {
          // push.v1 messages are operations for the channel hub, not for the text handler.
          if (event.type === "text") this.#channelHub().text(conn, event.data);
          else this.#channelHub().binary(conn);
          return;
        }
        return this.#dispatch.message(conn, event);
      case "ping":
        return this.#dispatch.message(conn, event);
      default:
        return;
    }
  }

  closed(conn: ClientConnection, info: CloseInfo): void {
    if (!this.#hub.closed(conn)) return;
    this.stats.closes.add(info.code);
    if (conn.protocol === PUSH_SUBPROTOCOL) this.#channels?.closed(conn);
    const reason = info.reason ? ` ${info.reason}` : "";
    this.log.debug(`connection ${conn.id} closed: ${info.code}${reason}`);
    if (!this.#dispatch.has("close")) return;
    this.#dispatch.call(
      { event: "close", conn: conn.id },
      () => this.#handlers().close!(conn, info, this),
    );
  }

  forget(conn: ClientConnection): void {
    this.#hub.forget(conn);
    if (conn.admitted !== null) this.#ops?.release(conn.admitted);
  }

  markDirty(conn: ClientConnection): void {
    this.#hub.markDirty(conn);
  }

  drained(conn: ClientConnection): void {
    if (conn.protocol === PUSH_SUBPROTOCOL) this.#channels?.drained(conn);
  }

  failed(conn: ClientConnection, f: Failure): void {
    this.stats.protocolFailures.add(f.kind);
    if (f.kind === "slow-consumer") {
      this.stats.slowConsumerCloses++;
      this.log.warn(
        `connection ${conn.id} from ${conn.remoteAddress}: closed as a slow consumer ` +
          `(over ${this.options.maxQueue} bytes queued, or nothing written for ` +
          `${this.options.drainTimeout} ms); its queued messages are dropped`,
      );
    } else if (f.kind === "pong-timeout") {
      this.log.debug(`connection ${conn.id}: no pong within ${this.options.pongTimeout} ms`);
    } else if (f.kind === "handshake-timeout" || f.kind === "close-timeout") {
      const which = f.kind === "handshake-timeout" ? "opening" : "closing";
      this.log.debug(`connection ${conn.id}: ${which} handshake timed out; TCP dropped`);
    } else {
      this.log.debug(`connection ${conn.id}: ${f.kind}: ${f.reason}`);
    }
  }

  refused(conn: ClientConnection, error: HandshakeError): void {
    this.stats.handshakes.add(error.status);
    const kind = refusalKind(error);
    const { log, summary } = this.#refusals.admit(kind, Date.now());
    if (summary) this.log.info(summary);
    if (!log) return;
    const from = `${conn.remoteAddress}${conn.path ? " " + conn.path : ""}`;
    this.log.info(`refused connection from ${from}: ${error.status} ${error.message}`);
  }

  // ---- internals ----

  #handlers(): Handlers {
    return this.#dispatch.handlers;
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    let backoff = ACCEPT_BACKOFF_MIN_MS;
    while (!this.#stopping) {
      let socket: Deno.TcpConn;
      try {
        socket = await listener.accept();
      } catch (e) {
        if (this.#stopping || e instanceof Deno.errors.BadResource) return;
        // ENOTCONN from a client that reset early, EMFILE when out of descriptors: keep serving.
        this.log.warn(`accept failed: ${errorMessage(e)}; retrying in ${backoff} ms`);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MIN_MS;
      this.stats.connectionsAccepted++;
      const conn = new ClientConnection(socket, this);
      this.#hub.add(conn);
      conn.run();
    }
  }

  #housekeeping(): void {
    const now = Date.now();
    this.#hub.tick(now);
    this.#channels?.tick(now);
    this.#hub.enforceBudget();
    this.#ops?.sweep(now);
    for (const line of this.#refusals.flush(now)) this.log.info(line);
  }

  #loop(): void {
    if (this.#loopBusy || this.#stopping) return;
    const pending = this.#dispatch.call({ event: "loop" }, () => this.#handlers().loop!(this));
    if (pending) {
      this.#loopBusy = true;
      pending.finally(() => this.#loopBusy = false);
    }
  }

  async #fifoBatch(lines: string[]): Promise<void> {
    this.stats.fifoBatches++;
    this.stats.fifoLinesRead += lines.length;
    if (!this.#dispatch.has("fifo")) {
      // Channel commands and plain lines, in order; a read's run of plain lines is one batch.
      const result = this.#channelHub().fifoBatch(lines, (text) => this.#pendingLines.push(text));
      this.#flushPendingLines();
      this.stats.publications += result.published;
      if (result.dropped.length > 0) {
        this.stats.fifoDropped.add("bad_command", result.dropped.length);
      }
    } else {
      const fifo = this.#handlers().fifo!;
      for (const line of lines) {
        const pending = this.#dispatch.call({ event: "fifo" }, () => fifo(line, this));
        if (pending) await pending;
      }
    }
    this.#hub.flush();
    // The full check runs on the shared timer; per read only when broadcasts crowd the budget.
    this.#hub.enforceBudgetIfNear();
    await this.#flowControl();
  }

  /**
   * Broadcasts the held FIFO lines as `broadcast` would, one at a time, but frames them all once
   * into one buffer that every client's queue shares: one enqueue and one write per client.
   */
  #flushPendingLines(): void {
    const lines = this.#pendingLines;
    if (lines.length === 0) return;
    this.#pendingLines = [];
    // Each line is compressed at most once, and each form (plain, compressed) joined once.
    const frames = new BroadcastFrames(lines, {
      ...this.#compression(),
      joinLimit: SHARED_BATCH_LIMIT,
    });
    // push.v1 speaks only JSON (lib/channels/PROTOCOL.md): plain lines go to the other clients.
    const notPushV1 = (this.#channels?.connectionCount ?? 0) > 0
      ? (conn: ClientConnection) => conn.protocol !== PUSH_SUBPROTOCOL
      : undefined;
    const sent = this.#hub.broadcast(frames, notPushV1);
    this.stats.messagesOut += sent * lines.length;
    this.stats.compressions += frames.compressions;
  }

  /** Sends channel messages to `to`: framed once per form, joined into one buffer. */
  #fanOut(texts: readonly string[], to: ClientConnection[]): void {
    this.#flushPendingLines();
    const frames = new BroadcastFrames(texts, {
      ...this.#compression(),
      joinLimit: SHARED_BATCH_LIMIT,
    });
    this.stats.messagesOut += texts.length * this.#hub.sendTo(frames, to);
    this.stats.compressions += frames.compressions;
  }

  /** Opens the channel history (SQLite in --state-dir, else memory) and the channel hub. */
  #openChannels(access: Access<ClientConnection> | undefined): void {
    const o = this.options;
    const opened = ChannelLog.open({
      stateDir: o.stateDir,
      limits: {
        ...DEFAULT_HISTORY_LIMITS,
        maxCount: o.historySize,
        maxAgeMs: o.historyTtl,
        maxBytes: o.historyMemory,
      },
      synchronous: FSYNC_LEVEL[o.historyFsync],
      warn: (line) => this.log.warn(line),
    });
    if (opened.warning) this.log.warn(opened.warning);
    this.#channelLog = opened.log;
    const subscribe = this.#dispatch.has("subscribe") ? this.#handlers().subscribe! : null;
    this.#channels = new ChannelHub<ClientConnection>(opened.log, {
      access,
      maxSubscriptionsPerConnection: o.maxSubscriptions,
      io: {
        // Held FIFO lines go first, so every connection sees lines in the order they came.
        send: (conn, text) => {
          this.#flushPendingLines();
          conn.send(text);
        },
        // Framed once per form and compressed at most once, like a broadcast.
        fanOut: (text, to) => this.#fanOut([text], to),
        // A run of publications to one channel: framed once into one buffer, one entry each.
        fanOutMany: (texts, to) => this.#fanOut(texts, to),
        close: (conn, code, reason) => {
          this.#flushPendingLines();
          conn.close(code, reason);
        },
        // A replay fills at most half of --max-queue, and goes on as the queue drains.
        queue: (conn) => ({ queued: conn.bufferedAmount, limit: o.maxQueue }),
        now: () => Date.now(),
        authorize: subscribe
          ? (conn, channel) => this.#authorize(subscribe, { conn, channel })
          : undefined,
        warn: (line) => this.log.warn(line),
      },
    });
  }

  /**
   * Tokens and presence: loaded when tokens are on, --presence-events names channels, or a
   * handlers file may name users (npm:jose is needed only with tokens).
   */
  #openAccess(): Access<ClientConnection> | undefined {
    const o = this.options;
    const wanted = this.#tokenKeys !== undefined || o.presenceEvents.length > 0 ||
      o.handlers !== undefined;
    if (!wanted) return undefined;
    const events = parseGrants(o.presenceEvents);
    if (!events.ok) throw new Error(`--presence-events: ${events.error}`);
    return new Access<ClientConnection>({
      keys: this.#tokenKeys,
      authTimeout: o.authTimeout,
      presenceEvents: o.presenceEvents.length > 0 ? events.grants : undefined,
    });
  }

  /** Runs the `subscribe` hook: true allows; a throw or anything but true refuses. */
  async #authorize(
    hook: NonNullable<Handlers["subscribe"]>,
    { conn, channel }: { conn: ClientConnection; channel: string },
  ): Promise<boolean> {
    let allowed = false;
    await this.#dispatch.call(
      { event: "subscribe", conn: conn.id },
      async () => allowed = (await hook(conn, channel, this)) === true,
    );
    return allowed;
  }

  #channelHub(): ChannelHub<ClientConnection> {
    if (!this.#channels) throw new Error("Cannot use channels before the server starts");
    return this.#channels;
  }

  /** Waits while most clients are behind (the server cannot keep up), at most FIFO_PAUSE_MS. */
  async #flowControl(): Promise<void> {
    if (this.#stopping) return; // Draining the FIFO on shutdown waits for no one.
    const deadline = Date.now() + FIFO_PAUSE_MS;
    while (this.#hub.mostAreBehind(Date.now()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, FIFO_PAUSE_POLL_MS));
    }
  }

  /** What /readyz reports: one short line per problem; none means ready. */
  #readinessProblems(): string[] {
    const problems: string[] = [];
    if (this.#stopping || !this.#listener) problems.push("not listening on the public port");
    problems.push(...fifoProblems(this.options.fifo));
    const fifo = this.fifoState;
    // A reader still backing off from a FIFO that was missing is not a problem once the path
    // checks pass: it opens the new FIFO at its next try.
    const stale = problems.length === 0 && /NotFound|No such file/i.test(fifo.lastError ?? "");
    if (fifo.state === "unreadable" && !stale) {
      problems.push(
        `FIFO ${this.options.fifo} cannot be read: ${fifo.lastError ?? "unknown error"}`,
      );
    }
    return problems;
  }

  /**
   * What /readyz lists as warnings, which leave the server ready: history kept in memory only
   * (no write grant for --state-dir, or a write failed since). The server serves either way,
   * and a restart would not bring the grant, so this never takes it out of rotation.
   */
  #readinessWarnings(): string[] {
    const why = this.#channelLog?.memoryOnly ?? null;
    return why === null ? [] : [`${MEMORY_ONLY}: ${why}`];
  }

  #upgradeRequest(
    conn: ClientConnection,
    { request, protocols }: { request: HttpRequest; protocols: readonly string[] },
  ): UpgradeRequest {
    return {
      method: request.method,
      path: conn.path,
      // Parsed only if the handler asks: most never look at the query.
      get query() {
        return conn.query;
      },
      headers: request.headers,
      cookies: parseCookies(request.headers.get("cookie")),
      origin: request.headers.get("origin"),
      remoteAddress: clientAddress(this.options, {
        peer: conn.peerAddress,
        headers: request.headers,
      }),
      protocols,
    };
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

  #safeFilter(filter: (conn: Connection) => boolean, conn: Connection): boolean {
    try {
      return filter(conn);
    } catch (e) {
      this.log.error(`broadcast filter failed (connection ${conn.id}): ${describeError(e)}`);
      return false;
    }
  }
}

/** The admin listener could not start (its address is taken or invalid). */
export class AdminListenError extends Error {
  override name = "AdminListenError";
}

/** The kind a refusal is counted under when its log lines are rate-limited. */
function refusalKind(error: HandshakeError): string {
  if (error.status === 403 && error.message.startsWith("Origin")) return "Origin refusals";
  if (error.status === 400 || error.status === 426 || error.status === 431) {
    return "handshake errors";
  }
  return "upgrade refusals";
}

/** The shared timer runs often enough to honour the shortest timeout within a quarter of it. */
function housekeepingPeriod(o: Options): number {
  const shortest = Math.min(
    o.handshakeTimeout,
    o.pingInterval,
    o.pongTimeout,
    o.closeTimeout,
    o.drainTimeout,
  );
  return Math.max(20, Math.min(1000, Math.floor(shortest / 4)));
}

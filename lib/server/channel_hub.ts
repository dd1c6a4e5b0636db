// Owns the push.v1 side of the server: a connection's operations (subscribe with resume,
// unsubscribe, ping), FIFO batches (publish, send to a user, disconnect a user, broadcast), and
// fan-out through one callback that receives each publication's text once. It knows nothing of
// sockets or frames: the server gives it connections (any key) and callbacks, and frames once.
//
// The seam between replay and live is closed by construction: a subscribe registers and reads the
// replay in one synchronous step, and each subscription remembers the offset its replay reached,
// so fan-out never sends that subscriber a publication twice. A replay is queued only as far as
// it fits in half of the connection's queue (lib/channels/replay_pacing.ts) and goes on as the
// queue drains; meanwhile fan-out skips the subscription (REPLAYING), and the replay reads on
// through history until it has caught up, then sets the offset it reached in the same
// synchronous step as that last read: no gap, no duplicate, and live follows replay.

import { classifyLine } from "../channels/commands.ts";
import { channelNameError } from "../channels/names.ts";
import type { Publication, PublishItem } from "../channels/history.ts";
import {
  binaryFrameError,
  encodeError,
  encodePong,
  encodePublication,
  encodeSubscribed,
  encodeUnsubscribed,
  encodeUserMessage,
  parseOperation,
  protocolError,
} from "../channels/protocol.ts";
import type { ClientOperation, ProtocolError, StreamPosition } from "../channels/protocol.ts";
import { REPLAYING, SubscriptionIndex } from "../channels/subscriptions.ts";
import { type QueueFill, ReplayPacer, type ReplayStep } from "../channels/replay_pacing.ts";
import { CloseCode, PushCloseCode } from "../protocol/close_codes.ts";
import type { ChannelLog } from "../store/channel_log.ts";
import type { Access, PresenceNotice } from "../auth/access.ts";
import { authedMessage } from "../policy/auth_session.ts";
import { presenceMessage } from "../channels/presence.ts";

/** Malformed operations a connection may send before it is closed with 4002. */
export const DEFAULT_MAX_ERRORS = 20;

/** The reason of the Close (4000) when history moved past a replay that was still being sent. */
export const REPLAY_OVERTAKEN_REASON = "replay overtaken by history";

/** The fill of a queue without a limit: a replay is queued at once. */
const UNLIMITED: QueueFill = { queued: 0, limit: Infinity };

/** What the hub needs from the server. */
export interface ChannelHubIo<C> {
  /** Queues one text frame for one connection (replies, replay). */
  send(conn: C, text: string): void;
  /**
   * Queues the same text for every connection in `to`: frame it ONCE and share the bytes. `to`
   * is a fresh array the server may keep.
   */
  fanOut(text: string, to: C[]): void;
  /**
   * Optional: queues several texts, in order, for every connection in `to`, framed ONCE into one
   * shared buffer (as a FIFO read's plain lines are), so each connection takes one queue entry for
   * the whole run. Used for a run of consecutive publications to one channel in a FIFO batch;
   * without it, each publication goes through `fanOut`.
   */
  fanOutMany?(texts: string[], to: C[]): void;
  /** Closes a connection with a code from the close-code table. */
  close(conn: C, code: number, reason: string): void;
  /**
   * Optional: how full a connection's outbound queue is. With it, a replay is paced by the
   * queue, and the server calls `drained` as the queue empties; without it, a replay is queued
   * at once.
   */
  queue?(conn: C): QueueFill;
  /** Milliseconds, for history age (Date.now in the server, a counter in tests). */
  now(): number;
  /** Authorizes a subscription (the handlers' `subscribe` hook); absent: every channel is open. */
  authorize?(conn: C, channel: string): boolean | Promise<boolean>;
  /** Logs a dropped FIFO line or a failing hook, one line. */
  warn?(line: string): void;
}

/** What a FIFO batch did, for logs and metrics. */
export interface BatchResult {
  readonly published: number;
  readonly broadcast: number;
  readonly dropped: readonly string[];
}

/** Channels, history and the push.v1 protocol for every connection of one server. */
export class ChannelHub<C> {
  readonly #log: ChannelLog;
  readonly #io: ChannelHubIo<C>;
  readonly #index: SubscriptionIndex<C>;
  readonly #users = new SubscriptionIndex<C>({ maxPerConnection: 1 });
  readonly #errors = new Map<C, number>();
  readonly #open = new Set<C>();
  readonly #chains = new Map<C, Promise<void>>();
  /** The replays still being sent, by connection. */
  readonly #replays = new Map<C, ReplayPacer>();
  readonly #maxErrors: number;
  /** Tokens and presence (issue 13), or null when neither is in use. */
  readonly #access: Access<C> | null;

  constructor(
    log: ChannelLog,
    options: {
      readonly io: ChannelHubIo<C>;
      readonly maxSubscriptionsPerConnection?: number;
      readonly maxErrors?: number;
      /** Token checks and presence; without it every channel is open and no one is named. */
      readonly access?: Access<C>;
    },
  ) {
    this.#access = options.access ?? null;
    this.#log = log;
    this.#io = options.io;
    this.#index = new SubscriptionIndex({
      maxPerConnection: options.maxSubscriptionsPerConnection,
    });
    this.#maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
  }

  /** The subscription index (read it for metrics; change it through the hub). */
  get subscriptions(): SubscriptionIndex<C> {
    return this.#index;
  }

  /** A push.v1 connection opened. `user` (from auth) makes it reachable by FIFO user commands. */
  open(conn: C, user?: string): void {
    this.#open.add(conn);
    if (user !== undefined) this.#users.subscribe(conn, user);
    this.#access?.open(conn, { now: this.#io.now(), identity: user });
  }

  /** How many push.v1 connections are open. */
  get connectionCount(): number {
    return this.#open.size;
  }

  /** Who is where, for handlers and presence queries; null without access. */
  get access(): Access<C> | null {
    return this.#access;
  }

  /**
   * Closes the connections whose auth deadline passed (no `auth` in time, or the token
   * expired). Call it from the server's shared timer.
   */
  tick(now: number): void {
    const access = this.#access;
    if (!access) return;
    for (const conn of this.#open) {
      const due = access.deadline(conn);
      if (due === null || due > now) continue;
      const close = access.tick(conn, now);
      if (close) this.#io.close(conn, close.code, close.reason);
    }
  }

  /** Sets or changes the user of a connection (after an `auth` operation, say). */
  setUser(conn: C, user: string): void {
    this.#users.removeConnection(conn);
    this.#users.subscribe(conn, user);
  }

  /** A connection closed: forget its subscriptions. */
  closed(conn: C): void {
    this.#open.delete(conn);
    this.#index.removeConnection(conn);
    this.#users.removeConnection(conn);
    this.#errors.delete(conn);
    this.#chains.delete(conn);
    this.#replays.delete(conn);
    // However it ended (Close, error, liveness timeout), its presence goes with it.
    if (this.#access) { for (const notice of this.#access.closed(conn)) this.#notify(notice); }
  }

  /** A text frame from a push.v1 connection. Operations of one connection run in order. */
  text(conn: C, text: string): void {
    const parsed = parseOperation(text);
    if (!parsed.ok) return this.#fail(conn, parsed.error);
    const op = parsed.operation;
    if (op.op === "auth") {
      // The signature check is async: later operations of this connection wait for it.
      const previous = this.#chains.get(conn) ?? Promise.resolve();
      this.#chains.set(
        conn,
        previous.then(() => this.#auth(conn, op)).catch((e) => {
          this.#io.warn?.(`auth failed: ${e instanceof Error ? e.message : String(e)}`);
          this.#io.close(conn, CloseCode.INTERNAL_ERROR, "");
        }),
      );
      return;
    }
    if (op.op === "subscribe" && this.#io.authorize !== undefined) {
      // The hook may be async: later operations of this connection wait for it.
      const previous = this.#chains.get(conn) ?? Promise.resolve();
      const next = previous.then(() => this.#subscribeAuthorized(conn, op)).catch((e) => {
        // An internal failure: 1011, and the peer is told nothing more (STYLE rule 4).
        this.#io.warn?.(`subscribe failed: ${e instanceof Error ? e.message : String(e)}`);
        this.#io.close(conn, CloseCode.INTERNAL_ERROR, "");
      });
      this.#chains.set(conn, next);
      return;
    }
    const pending = this.#chains.get(conn);
    if (pending !== undefined) {
      this.#chains.set(
        conn,
        pending.then(() => this.#operate(conn, op)).catch((e) => {
          this.#io.warn?.(`operation failed: ${e instanceof Error ? e.message : String(e)}`);
          this.#io.close(conn, CloseCode.INTERNAL_ERROR, "");
        }),
      );
    } else {
      this.#operate(conn, op);
    }
  }

  /** A binary frame from a push.v1 connection: not an operation. */
  binary(conn: C): void {
    this.#fail(conn, binaryFrameError());
  }

  /**
   * Subscribes a connection from the server side (`conn.subscribe` in handlers), without the
   * authorize hook. Returns false when the connection holds its cap of subscriptions, or is not
   * an open push.v1 connection: any other would be sent JSON it does not speak, and nothing
   * would forget its subscriptions when it closes.
   */
  subscribe(conn: C, channel: string, since: StreamPosition | null = null): boolean {
    const nameError = channelNameError(channel);
    if (nameError !== null) throw new TypeError(`Cannot subscribe: ${nameError}`);
    if (!this.#open.has(conn)) return false;
    return this.#subscribeNow(conn, { channel, since, id: undefined });
  }

  /**
   * Unsubscribes a connection from the server side (`conn.unsubscribe`), as the `unsubscribe`
   * operation would: the client is told with an `unsubscribed` (without `id`, as `subscribe`
   * sends `subscribed`) and its user leaves the channel's presence. Returns whether there was a
   * subscription; without one nothing is sent.
   */
  unsubscribe(conn: C, channel: string): boolean {
    if (!this.#unsubscribe(conn, channel)) return false;
    this.#io.send(conn, encodeUnsubscribed({ channel }));
    if (this.#access) this.#notify(this.#access.unsubscribed(conn, channel));
    return true;
  }

  /** Some of a connection's queue was written: a replay waiting for room goes on. */
  drained(conn: C): void {
    if (this.#replays.has(conn)) this.#pace(conn);
  }

  /**
   * `server.publish(channel, data)`: one publication, committed then sent; returns its offset.
   * Throws a TypeError for an invalid channel name (a bug in the caller, not a peer's error).
   */
  publish(channel: string, data: unknown): number {
    const nameError = channelNameError(channel);
    if (nameError !== null) throw new TypeError(`Cannot publish: ${nameError}`);
    const [pub] = this.#publish([{ channel, data: JSON.stringify(data) ?? "null" }]);
    return pub.offset;
  }

  /**
   * One FIFO read: classifies each line, commits every publication of the batch in ONE
   * transaction, then delivers everything in the order of the lines. `broadcast(text)` is the
   * server's existing broadcast to every connection (plain and push.v1 alike, as today).
   */
  fifoBatch(lines: readonly string[], broadcast: (text: string) => void): BatchResult {
    const commands = lines.map(classifyLine);
    const items: PublishItem[] = [];
    for (const c of commands) if (c.kind === "publish") items.push(c);
    const pubs = this.#log.publish(items, this.#io.now()); // write before send
    let next = 0;
    let broadcasts = 0;
    const dropped: string[] = [];
    // Consecutive publications to one channel go out as one run; any other line ends the run,
    // so every connection still sees everything in the order of the lines.
    let run: Publication[] = [];
    const endRun = () => {
      if (run.length > 0) this.#fanOutRun(run);
      run = [];
    };
    for (const c of commands) {
      if (c.kind !== "publish") endRun();
      switch (c.kind) {
        case "publish": {
          const pub = pubs[next++];
          if (run.length > 0 && run[0].channel !== pub.channel) endRun();
          run.push(pub);
          break;
        }
        case "broadcast":
          broadcast(c.text);
          broadcasts++;
          break;
        case "user": {
          const to = [...this.#users.subscribers(c.user).keys()];
          if (to.length > 0) this.#io.fanOut(encodeUserMessage(c.data), to);
          break;
        }
        case "disconnect":
          for (const conn of [...this.#users.subscribers(c.user).keys()]) {
            this.#io.close(conn, PushCloseCode.DISCONNECTED, "disconnected by the application");
          }
          break;
        case "dropped":
          dropped.push(c.reason);
          this.#io.warn?.(`fifo: line dropped: ${c.reason}`);
          break;
        default: {
          const never: never = c;
          throw new Error(`unknown command ${JSON.stringify(never)}`);
        }
      }
    }
    endRun();
    return { published: pubs.length, broadcast: broadcasts, dropped };
  }

  /** Drops expired history; call it now and then (e.g. once a minute). */
  trim(): void {
    this.#log.trim(this.#io.now());
  }

  #publish(items: PublishItem[]): Publication[] {
    const pubs = this.#log.publish(items, this.#io.now());
    for (const pub of pubs) this.#fanOut(pub);
    return pubs;
  }

  /** Fans out publications of one channel, in offset order, through `fanOutMany` if offered. */
  #fanOutRun(run: readonly Publication[]): void {
    if (!this.#io.fanOutMany || run.length === 1) {
      for (const pub of run) this.#fanOut(pub);
      return;
    }
    const first = run[0].offset;
    const whole: C[] = [];
    for (const [conn, after] of this.#index.subscribers(run[0].channel)) {
      if (after < first) whole.push(conn);
      else {
        // Its replay already reached into the run (the seam): only what comes after.
        for (const pub of run) if (pub.offset > after) this.#io.send(conn, encodePublication(pub));
      }
    }
    if (whole.length > 0) this.#io.fanOutMany(run.map(encodePublication), whole);
  }

  #fanOut(pub: Publication): void {
    const to: C[] = [];
    for (const [conn, after] of this.#index.subscribers(pub.channel)) {
      if (pub.offset > after) to.push(conn);
    }
    if (to.length > 0) this.#io.fanOut(encodePublication(pub), to);
  }

  #operate(conn: C, op: ClientOperation): void {
    if (!this.#open.has(conn)) return;
    switch (op.op) {
      case "subscribe":
        for (const request of op.channels) {
          if (!this.#admitChannel(conn, request.channel, op.id)) {
            if (!this.#open.has(conn)) return;
            continue;
          }
          this.#subscribeNow(conn, { ...request, id: op.id });
        }
        return;
      case "unsubscribe":
        if (!this.#admit(conn)) return;
        for (const channel of op.channels) {
          const was = this.#unsubscribe(conn, channel);
          this.#io.send(conn, encodeUnsubscribed({ id: op.id, channel }));
          if (was && this.#access) this.#notify(this.#access.unsubscribed(conn, channel));
        }
        return;
      case "ping":
        if (!this.#admit(conn)) return;
        return this.#io.send(conn, encodePong(op.id));
      case "presence":
        if (!this.#access) {
          return this.#fail(
            conn,
            protocolError("not-supported", { reason: "presence is not offered", id: op.id }),
          );
        }
        if (!this.#admitChannel(conn, op.channel, op.id)) return;
        return this.#io.send(
          conn,
          presenceMessage(this.#access.presence, { channel: op.channel, id: op.id }),
        );
      case "auth":
        return; // Handled in text(), in order with the connection's other operations.
      default: {
        const never: never = op;
        throw new Error(`unknown operation ${JSON.stringify(never)}`);
      }
    }
  }

  async #subscribeAuthorized(
    conn: C,
    op: Extract<ClientOperation, { op: "subscribe" }>,
  ): Promise<void> {
    for (const request of op.channels) {
      let allowed: boolean;
      try {
        allowed = await this.#io.authorize!(conn, request.channel);
      } catch (e) {
        this.#io.warn?.(`subscribe hook failed: ${e instanceof Error ? e.message : String(e)}`);
        allowed = false;
      }
      if (!this.#open.has(conn)) return;
      if (allowed && !this.#admitChannel(conn, request.channel, op.id)) {
        if (!this.#open.has(conn)) return;
        continue;
      }
      if (!allowed) {
        this.#io.send(
          conn,
          encodeError(protocolError("forbidden", {
            reason: "subscription refused",
            id: op.id,
            channel: request.channel,
          })),
        );
        continue;
      }
      this.#subscribeNow(conn, { ...request, id: op.id });
    }
  }

  /** `{"op":"auth","token":…}`: the first authentication, or a refresh. */
  async #auth(conn: C, op: Extract<ClientOperation, { op: "auth" }>): Promise<void> {
    const access = this.#access;
    if (!access || !access.required) {
      return this.#fail(
        conn,
        protocolError("not-supported", { reason: "tokens are not enabled", id: op.id }),
      );
    }
    const now = this.#io.now();
    const outcome = await access.auth(conn, op.token, {
      now,
      subscribed: this.#index.channelsOf(conn),
    });
    if (outcome === null || !this.#open.has(conn)) return;
    if (outcome.type === "close") return this.#io.close(conn, outcome.code, outcome.reason);
    this.#users.removeConnection(conn);
    this.#users.subscribe(conn, outcome.user);
    this.#io.send(conn, authedMessage(outcome));
    for (const channel of outcome.revoked) {
      this.#unsubscribe(conn, channel);
      this.#io.send(
        conn,
        encodeError(protocolError("forbidden", { reason: "channel not granted", channel })),
      );
      this.#notify(access.unsubscribed(conn, channel));
    }
  }

  /** Any operation but auth, subscribe and presence: may it proceed? Closes the connection if not. */
  #admit(conn: C): boolean {
    if (!this.#access) return true;
    const verdict = this.#access.admit(conn, this.#io.now());
    if (verdict.ok) return true;
    this.#io.close(conn, verdict.code, verdict.reason);
    return false;
  }

  /**
   * A subscribe or presence query on `channel`: does the token grant it? A refusal of this
   * channel sends an error (4005); a refusal of the connection closes it.
   */
  #admitChannel(conn: C, channel: string, id: string | number | undefined): boolean {
    if (!this.#access) return true;
    const decision = this.#access.authorize(conn, channel, this.#io.now());
    if (decision.ok) return true;
    if (decision.type === "close") {
      this.#io.close(conn, decision.code, decision.reason);
    } else {
      this.#io.send(
        conn,
        encodeError({ code: decision.code, reason: decision.reason, id, channel }),
      );
    }
    return false;
  }

  /** Sends a presence join or leave to every subscriber of its channel, encoded once. */
  #notify(notice: PresenceNotice | null): void {
    if (!notice?.message) return;
    const to = [...this.#index.subscribers(notice.change.channel).keys()];
    if (to.length > 0) this.#io.fanOut(notice.message, to);
  }

  /** Registers and reads the replay in this one synchronous call, and starts sending it. */
  #subscribeNow(
    conn: C,
    request: { channel: string; since: StreamPosition | null; id: string | number | undefined },
  ): boolean {
    const { channel, since, id } = request;
    const { decision, replay } = this.#log.resume(channel, since, this.#io.now());
    const replaying = replay.length > 0;
    const outcome = this.#index.subscribe(conn, channel, replaying ? REPLAYING : decision.offset);
    if (outcome === "limit") {
      this.#fail(
        conn,
        protocolError("too-many-subscriptions", { reason: "too many subscriptions", id, channel }),
      );
      return false;
    }
    const fresh = outcome === "added";
    this.#io.send(
      conn,
      encodeSubscribed({
        id,
        channel,
        // Already subscribed: it is live already, and nothing is replayed.
        recovered: !fresh || decision.kind === "replay",
        epoch: decision.epoch,
        offset: decision.offset,
      }),
    );
    if (fresh && replaying) {
      let pacer = this.#replays.get(conn);
      if (pacer === undefined) this.#replays.set(conn, pacer = new ReplayPacer());
      // The replay covers from..to without a hole: it starts right after the client's position.
      const from = { epoch: decision.epoch, offset: replay[0].offset - 1 };
      pacer.add(channel, { since: from, pubs: replay });
      this.#pace(conn);
    }
    if (fresh && this.#access) this.#notify(this.#access.subscribed(conn, channel));
    return true;
  }

  /** Removes a subscription and stops its replay. */
  #unsubscribe(conn: C, channel: string): boolean {
    const pacer = this.#replays.get(conn);
    if (pacer?.cancel(channel) && pacer.idle) this.#replays.delete(conn);
    return this.#index.unsubscribe(conn, channel);
  }

  /** Sends a connection's replays as far as its queue has room (the pacer decides). */
  #pace(conn: C): void {
    const pacer = this.#replays.get(conn)!;
    for (;;) {
      const step = pacer.next(this.#io.queue?.(conn) ?? UNLIMITED);
      switch (step.kind) {
        case "send":
          this.#io.send(conn, step.text);
          continue;
        case "read":
          if (!this.#readOn(conn, { pacer, step })) return;
          continue;
        case "wait":
          return;
        case "idle":
          this.#replays.delete(conn);
          return;
        default: {
          const never: never = step;
          throw new Error(`unknown replay step ${JSON.stringify(never)}`);
        }
      }
    }
  }

  /**
   * A replay sent everything it read: reads what its channel got since. Caught up, the
   * subscription goes live at the offset the replay reached, in this same synchronous step. If
   * history no longer covers it (trimmed meanwhile, or a new epoch), the client was too slow to
   * be replayed: it is closed with 4000, and its resume then answers recovered:false.
   */
  #readOn(
    conn: C,
    { pacer, step }: { pacer: ReplayPacer; step: Extract<ReplayStep, { kind: "read" }> },
  ): boolean {
    const more = this.#log.resume(step.channel, step.since, this.#io.now());
    if (more.decision.kind !== "replay") {
      this.#replays.delete(conn);
      this.#io.close(conn, PushCloseCode.SLOW_CONSUMER, REPLAY_OVERTAKEN_REASON);
      return false;
    }
    if (pacer.extend(step.channel, more.replay)) {
      this.#index.setAfter(conn, step.channel, step.since.offset);
    }
    return true;
  }

  /** Answers an error; too many of them close the connection with 4002. */
  #fail(conn: C, error: ProtocolError): void {
    this.#io.send(conn, encodeError(error));
    const count = (this.#errors.get(conn) ?? 0) + 1;
    this.#errors.set(conn, count);
    if (count >= this.#maxErrors) {
      this.#io.close(conn, PushCloseCode.BAD_REQUEST, "too many malformed operations");
    }
  }
}

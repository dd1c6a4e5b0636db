// Owns the contract between push-server and an application's handlers file: every type a
// handler author needs is exported from here. All handlers are optional and may be async.

import type { PresenceQuery } from "../channels/presence.ts";

export type { PresenceQuery };

/** Context for a log line, such as `{ conn: 12, event: "text" }`; kept low in number. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/**
 * Log lines go to stderr, one per call, filtered by --log-level, as text or (with
 * --log-format json) one JSON object per line. `fields` become `key=value` or JSON members.
 */
export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
}

/** A message for a client: a string goes out as a text frame, bytes as a binary frame. */
export type Message = string | Uint8Array;

/** The HTTP upgrade request, as `upgrade` sees it before the 101 is sent. */
export interface UpgradeRequest {
  readonly method: string;
  /** The path without the query, e.g. "/chat". */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Request headers by lower-case name. */
  readonly headers: ReadonlyMap<string, string>;
  readonly cookies: Readonly<Record<string, string>>;
  /** The Origin header, or undefined when absent (non-browser clients). */
  readonly origin: string | undefined;
  /** The client's address; from X-Forwarded-For / X-Real-IP when the peer is a trusted proxy. */
  readonly remoteAddress: string;
  /** Subprotocols the client offered, in its order of preference. */
  readonly protocols: readonly string[];
}

/** What `upgrade` may return: nothing to accept as is, a refusal, or an acceptance. */
export type UpgradeResult =
  | void
  | undefined
  | { readonly reject: { readonly status: number; readonly body?: string } }
  | {
    readonly reject?: undefined;
    /** One of `request.protocols`, echoed in Sec-WebSocket-Protocol. */
    readonly protocol?: string;
    /** Becomes `connection.data`. */
    readonly data?: unknown;
    /** Who this is: `connection.user`, the target of FIFO `user` and `disconnect` commands. */
    readonly user?: string;
  };

/** One open WebSocket connection. */
export interface Connection {
  /** Unique for the life of the process, in order of arrival. */
  readonly id: number;
  readonly remoteAddress: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: ReadonlyMap<string, string>;
  /** The subprotocol agreed in the handshake, or "" when none. */
  readonly protocol: string;
  /** Application state: whatever `upgrade` returned as `data`, yours to change. */
  data: unknown;
  /** Bytes queued for this client and not yet written to its socket. */
  readonly bufferedAmount: number;
  /** The user `upgrade` named (or a token's `sub`), or null. */
  readonly user: string | null;
  /**
   * Subscribes this connection to a channel (push.v1 connections), without the `subscribe`
   * hook. Returns false when it already holds its cap of subscriptions, or when it is not an
   * open push.v1 connection (no other kind can read publications).
   */
  subscribe(channel: string): boolean;
  /**
   * Ends a subscription, as the client's `unsubscribe` would: the client gets `unsubscribed`
   * and its user leaves the channel's presence. Returns whether there was one.
   */
  unsubscribe(channel: string): boolean;
  /** Sends a message; returns false when the connection is closing or closed. */
  send(message: Message): boolean;
  /** Starts the closing handshake (default 1000, "" reason). */
  close(code?: number, reason?: string): void;
}

/** How a connection ended. `clean` is true when Close frames were exchanged. */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
  readonly clean: boolean;
}

/** The running server, as handlers see it. */
export interface Server {
  /**
   * The open connections. A connection joins just before its `open` handler runs (so it is
   * already here during `open`) and leaves just before its `close` handler runs.
   */
  readonly connections: ReadonlySet<Connection>;
  /** Sends one message to every open connection (or those `filter` accepts), encoded once. */
  broadcast(message: Message, filter?: (conn: Connection) => boolean): number;
  send(conn: Connection, message: Message): boolean;
  /**
   * Publishes `data` (any JSON value) to a channel: stored in its history first, then sent to
   * every subscriber. Returns the publication's offset.
   */
  publish(channel: string, data: unknown): number;
  /**
   * Who is subscribed where (users from tokens or from `upgrade`'s `user`), or null when
   * presence is off (no tokens, no --presence-events and no handlers file).
   */
  readonly presence: PresenceQuery | null;
  close(conn: Connection, code?: number, reason?: string): void;
  readonly log: Logger;
}

type Awaitable<T> = T | Promise<T>;

/** The exports a handlers file may have. Each is optional. */
export interface Handlers {
  /** Before the 101: may refuse, pick a subprotocol and attach data. */
  upgrade?(request: UpgradeRequest): Awaitable<UpgradeResult>;
  /** Once the server listens. */
  start?(server: Server): Awaitable<void>;
  open?(conn: Connection, server: Server): Awaitable<void>;
  text?(conn: Connection, text: string, server: Server): Awaitable<void>;
  binary?(conn: Connection, data: Uint8Array, server: Server): Awaitable<void>;
  /** After the automatic pong has been queued. */
  ping?(conn: Connection, payload: Uint8Array, server: Server): Awaitable<void>;
  close?(conn: Connection, info: CloseInfo, server: Server): Awaitable<void>;
  /**
   * A push.v1 client asks to subscribe to `channel`: return true to allow it. Without this
   * handler every channel is open to every client.
   */
  subscribe?(conn: Connection, channel: string, server: Server): Awaitable<boolean>;
  /**
   * One line from the FIFO. Without this handler each line is a channel command or a broadcast
   * (see README, "Channels and history"); with it, the handler decides.
   */
  fifo?(line: string, server: Server): Awaitable<void>;
  /** Every tick (--tick). */
  loop?(server: Server): Awaitable<void>;
  /** On SIGINT/SIGTERM, before clients are sent 1001. */
  shutdown?(server: Server): Awaitable<void>;
}

/** The names a handlers file may export. */
export const HANDLER_NAMES = [
  "upgrade",
  "start",
  "open",
  "text",
  "binary",
  "ping",
  "close",
  "subscribe",
  "fifo",
  "loop",
  "shutdown",
] as const satisfies readonly (keyof Handlers)[];

// Types of push-client.js, the browser client of the push.v1 protocol.

/** The subprotocol the client speaks: "push.v1". */
export declare const PROTOCOL: "push.v1";

/** Where a page left a channel: the epoch and the offset of the last publication it saw. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

export interface Publication<T = unknown> {
  readonly type: "publication";
  readonly channel: string;
  readonly offset: number;
  readonly data: T;
}

export interface Subscribed {
  readonly type: "subscribed";
  readonly id?: string | number;
  readonly channel: string;
  /** True when the missed publications follow (a resume that lost nothing). */
  readonly recovered: boolean;
  readonly epoch: string;
  readonly offset: number;
}

export interface ServerError {
  readonly type: "error";
  readonly code: number;
  readonly reason: string;
  readonly id?: string | number;
  readonly channel?: string;
}

/** The server accepted the token (first time or refresh). */
export interface Authed {
  readonly type: "authed";
  /** The token's `sub`. */
  readonly user: string;
  /**
   * When the token expires, in ms since the epoch; the server closes with 4004 then unless a new
   * token arrives first (with `token` a function, the client sends one: see `refresh`).
   */
  readonly expiresAt: number;
}

/** A user's first connection subscribed to `channel` ("join") or its last one left ("leave"). */
export interface PresenceChange {
  readonly type: "join" | "leave";
  readonly channel: string;
  readonly user: string;
}

/** The reply to `presence(channel)`: at most 1000 users listed, `total` counts them all. */
export interface Presence {
  readonly type: "presence";
  /** The id of the query it answers (the client matches replies by it); absent from a server
   * older than 0.2.0, whose replies the client matches by channel, in order. */
  readonly id?: string | number;
  readonly channel: string;
  readonly total: number;
  readonly users: readonly { readonly user: string; readonly connections: number }[];
}

/** Why a `presence` query failed when the link closed before its reply (code 0: not connected). */
export interface Closed {
  readonly code: number;
  readonly reason: string;
}

export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

export interface StateChange {
  readonly state: ClientState;
  /**
   * The close code that caused it (4999: the heartbeat got no answer). A refused token ends in
   * "closed" with 4003 (missing or invalid) or 4004 (expired, when `token` is a string) and the
   * server's reason, e.g. "token expired".
   */
  readonly code?: number;
  readonly reason?: string;
  /** Milliseconds until the next attempt, when reconnecting. */
  readonly delay?: number;
}

export interface PushClientEvents {
  publication: Publication;
  /** Also for a channel the server's handlers subscribed the connection to (no `id`): such a
   * channel is live only, made again by the server on each connection, never resumed. */
  subscribed: Subscribed;
  /** The server's handlers ended a subscription (conn.unsubscribe). */
  unsubscribed: { readonly type: "unsubscribed"; readonly channel: string };
  /** A resume could not be recovered: refetch the channel's state. */
  lost: { readonly channel: string } & Position;
  state: StateChange;
  error: ServerError;
  authed: Authed;
  join: PresenceChange;
  leave: PresenceChange;
  /** Any other server message. */
  message: { readonly type: string; readonly [key: string]: unknown };
}

export interface PushClientOptions {
  /** First reconnect delay bound in ms (default 500); doubles per failed attempt. */
  minDelay?: number;
  /** Largest reconnect delay bound in ms (default 30000). */
  maxDelay?: number;
  /** Ms of silence before a ping (default 25000). */
  heartbeat?: number;
  /** Ms to wait for the answer to a ping before reconnecting (default 10000). */
  timeout?: number;
  /**
   * Sent in an "auth" message before subscribing. A function is called at every connect, and
   * again before the token expires (see `refresh`); a string cannot be refreshed, so the
   * connection ends with 4004 at its expiry.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * With `token` a function: the share of a token's remaining lifetime (from each "authed" to
   * its `expiresAt`) after which the client calls `token` again and sends the new token on the
   * open connection, without reconnecting (default 0.8: a 1 h token is refreshed after 48 min).
   * A failed call is retried halfway through what remains then (90%, 95%, …), never sooner
   * than `minDelay`. 0 turns early refresh off (a new token is then fetched after the 4004).
   */
  refresh?: number;
  /** The WebSocket class (default: globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
}

export declare class PushClient {
  constructor(url: string, options?: PushClientOptions);
  readonly state: ClientState;
  /** The user of the last "authed" reply, or null. */
  readonly user: string | null;
  on<K extends keyof PushClientEvents>(
    type: K,
    handler: (detail: PushClientEvents[K]) => void,
  ): () => void;
  position(channel: string): Position | null;
  subscribe(channel: string, since?: Position | null): void;
  unsubscribe(channel: string): void;
  /**
   * Who is on `channel` (one the token grants). Rejects with the server's `ServerError` (4005:
   * not granted) or with `Closed` when the link closes first or is not open.
   */
  presence(channel: string): Promise<Presence>;
  connect(): void;
  close(): void;
}

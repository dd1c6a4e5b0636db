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

export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

export interface StateChange {
  readonly state: ClientState;
  /** The close code that caused it (4999: the heartbeat got no answer). */
  readonly code?: number;
  readonly reason?: string;
  /** Milliseconds until the next attempt, when reconnecting. */
  readonly delay?: number;
}

export interface PushClientEvents {
  publication: Publication;
  subscribed: Subscribed;
  /** A resume could not be recovered: refetch the channel's state. */
  lost: { readonly channel: string } & Position;
  state: StateChange;
  error: ServerError;
  /** Any other server message (room for presence). */
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
  /** Sent in an "auth" message before subscribing; a function is called at every connect. */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket class (default: globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
}

export declare class PushClient {
  constructor(url: string, options?: PushClientOptions);
  readonly state: ClientState;
  on<K extends keyof PushClientEvents>(
    type: K,
    handler: (detail: PushClientEvents[K]) => void,
  ): () => void;
  position(channel: string): Position | null;
  subscribe(channel: string, since?: Position | null): void;
  unsubscribe(channel: string): void;
  connect(): void;
  close(): void;
}

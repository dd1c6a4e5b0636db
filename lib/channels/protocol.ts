// Owns the push.v1 subprotocol: parsing client operations (JSON text frames) into values, and
// serialising server messages. Malformed input never throws; it becomes a ProtocolError value.
// lib/channels/PROTOCOL.md documents every message and error code with an example session.

import { PushCloseCode } from "../protocol/close_codes.ts";
import { channelNameError } from "./names.ts";

/** The subprotocol a client offers in Sec-WebSocket-Protocol to speak this protocol. */
export const PUSH_SUBPROTOCOL = "push.v1";

/** The longest request id string echoed back, in characters. */
export const MAX_ID_LENGTH = 64;
/** The longest auth token accepted, in characters. */
export const MAX_TOKEN_LENGTH = 8192;

/** A client's request id: echoed in the replies to that request. */
export type RequestId = string | number;

/** Where a client left a channel: the epoch it saw and the offset of the last publication. */
export interface StreamPosition {
  readonly epoch: string;
  readonly offset: number;
}

/** One channel of a subscribe operation, with the position to resume from (null: fresh). */
export interface SubscribeRequest {
  readonly channel: string;
  readonly since: StreamPosition | null;
}

/** A client operation, parsed and checked. `id` is undefined when the client sent none. */
export type ClientOperation =
  | {
    readonly op: "subscribe";
    readonly id: RequestId | undefined;
    readonly channels: readonly SubscribeRequest[];
  }
  | {
    readonly op: "unsubscribe";
    readonly id: RequestId | undefined;
    readonly channels: readonly string[];
  }
  | { readonly op: "ping"; readonly id: RequestId | undefined }
  /** Reserved for the auth issue: a token, sent as the first message. */
  | { readonly op: "auth"; readonly id: RequestId | undefined; readonly token: string }
  /** Reserved for the presence issue: who is subscribed to a channel. */
  | { readonly op: "presence"; readonly id: RequestId | undefined; readonly channel: string };

/** Every kind of failure the protocol reports, with its code (from PushCloseCode). */
export const ProtocolFailure = {
  /** The frame was not valid JSON. */
  "not-json": PushCloseCode.BAD_REQUEST,
  /** The JSON was not an object with a string `op`. */
  "not-operation": PushCloseCode.BAD_REQUEST,
  /** `op` names no operation of push.v1. */
  "unknown-op": PushCloseCode.BAD_REQUEST,
  /** `id` is neither a string of at most 64 characters nor a safe integer. */
  "bad-id": PushCloseCode.BAD_REQUEST,
  /** A field has the wrong type or shape. */
  "bad-field": PushCloseCode.BAD_REQUEST,
  /** A channel name breaks the rule of names.ts. */
  "bad-channel": PushCloseCode.BAD_REQUEST,
  /** A binary frame: push.v1 operations are text. */
  "binary": PushCloseCode.BAD_REQUEST,
  /** The connection would exceed its subscription cap. */
  "too-many-subscriptions": PushCloseCode.BAD_REQUEST,
  /** The operation is reserved but this server does not offer it (auth, presence). */
  "not-supported": PushCloseCode.BAD_REQUEST,
  /** The application refused the subscription. */
  "forbidden": PushCloseCode.FORBIDDEN,
  /** The token is missing or invalid. */
  "unauthorized": PushCloseCode.UNAUTHORIZED,
} as const;

export type ProtocolFailureKind = keyof typeof ProtocolFailure;

/** A failure as a value: its kind, its code, a reason for people, and the request it answers. */
export interface ProtocolError {
  readonly kind: ProtocolFailureKind;
  readonly code: number;
  readonly reason: string;
  readonly id?: RequestId;
  readonly channel?: string;
}

/** Builds a ProtocolError with the code of its kind. */
export function protocolError(
  kind: ProtocolFailureKind,
  detail: { reason: string; id?: RequestId; channel?: string },
): ProtocolError {
  return { kind, code: ProtocolFailure[kind], ...detail };
}

export type OperationResult =
  | { readonly ok: true; readonly operation: ClientOperation }
  | { readonly ok: false; readonly error: ProtocolError };

type Fields = Record<string, unknown>;

function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fail(
  kind: ProtocolFailureKind,
  reason: string,
  id?: RequestId,
): { ok: false; error: ProtocolError } {
  return { ok: false, error: protocolError(kind, id === undefined ? { reason } : { reason, id }) };
}

function parseId(value: unknown): RequestId | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value === "string" && value.length <= MAX_ID_LENGTH) return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  return null;
}

function parsePosition(value: unknown): StreamPosition | null | string {
  if (!isObject(value)) return "a channel's value must be an object, {} or {epoch, offset}";
  const { epoch, offset } = value;
  if (epoch === undefined && offset === undefined) return null;
  if (typeof epoch !== "string" || epoch.length > MAX_ID_LENGTH) {
    return "epoch must be a string of at most 64 characters";
  }
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
    return "offset must be an integer ≥ 0";
  }
  return { epoch, offset };
}

/**
 * Parses one text frame of a push.v1 client. Never throws: anything malformed, however deep or
 * large, comes back as `{ok:false, error}` with the request id when one could be read.
 */
export function parseOperation(text: string): OperationResult {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return fail("not-json", "the message is not valid JSON");
  }
  if (!isObject(message) || typeof message.op !== "string") {
    return fail("not-operation", 'the message is not an object with a string "op"');
  }
  const id = parseId(message.id);
  if (id === null) {
    return fail("bad-id", "id must be a string of at most 64 characters or an integer");
  }
  switch (message.op) {
    case "subscribe": {
      const channels = message.channels;
      if (!isObject(channels)) return fail("bad-field", "channels must be an object", id);
      const requests: SubscribeRequest[] = [];
      for (const [channel, value] of Object.entries(channels)) {
        const nameError = channelNameError(channel);
        if (nameError !== null) return fail("bad-channel", nameError, id);
        const since = parsePosition(value);
        if (typeof since === "string") return fail("bad-field", since, id);
        requests.push({ channel, since });
      }
      if (requests.length === 0) return fail("bad-field", "channels is empty", id);
      return { ok: true, operation: { op: "subscribe", id, channels: requests } };
    }
    case "unsubscribe": {
      const channels = message.channels;
      if (!Array.isArray(channels) || channels.length === 0) {
        return fail("bad-field", "channels must be a non-empty array of names", id);
      }
      for (const channel of channels) {
        const nameError = channelNameError(channel);
        if (nameError !== null) return fail("bad-channel", nameError, id);
      }
      return { ok: true, operation: { op: "unsubscribe", id, channels: channels as string[] } };
    }
    case "ping":
      return { ok: true, operation: { op: "ping", id } };
    case "auth": {
      const token = message.token;
      if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return fail("bad-field", "token must be a non-empty string of at most 8192 characters", id);
      }
      return { ok: true, operation: { op: "auth", id, token } };
    }
    case "presence": {
      const nameError = channelNameError(message.channel);
      if (nameError !== null) return fail("bad-channel", nameError, id);
      return { ok: true, operation: { op: "presence", id, channel: message.channel as string } };
    }
    default:
      return fail("unknown-op", "unknown op", id);
  }
}

/** The error a binary frame gets: push.v1 operations are JSON text. */
export function binaryFrameError(): ProtocolError {
  return protocolError("binary", { reason: "push.v1 operations are text frames" });
}

function idField(id: RequestId | undefined): string {
  return id === undefined ? "" : `"id":${JSON.stringify(id)},`;
}

/** The reply to one channel of a subscribe: where the channel stands now, and whether the
 * client's position was recovered (then the missed publications follow this message). */
export function encodeSubscribed(message: {
  readonly id?: RequestId;
  readonly channel: string;
  readonly recovered: boolean;
  readonly epoch: string;
  readonly offset: number;
}): string {
  return `{"type":"subscribed",${idField(message.id)}"channel":${
    JSON.stringify(message.channel)
  },"recovered":${message.recovered},"epoch":${
    JSON.stringify(message.epoch)
  },"offset":${message.offset}}`;
}

/** The reply to one channel of an unsubscribe. */
export function encodeUnsubscribed(message: { readonly id?: RequestId; readonly channel: string }) {
  return `{"type":"unsubscribed",${idField(message.id)}"channel":${
    JSON.stringify(message.channel)
  }}`;
}

/**
 * The text of a publication frame: the JSON array `[channel, offset, data]`. Publications are
 * the one hot message, sent to every subscriber, so they drop the keys every other server message
 * carries: 6 bytes around the channel, offset and data instead of 53 (PROTOCOL.md).
 * `data` is already JSON text (as checked by the FIFO command parser or produced by
 * JSON.stringify), spliced in without a second parse. Channel names need no escaping (names.ts),
 * so the prefix costs one concatenation; the server encodes the result into one frame and writes
 * the same bytes to every subscriber.
 */
export function encodePublication(pub: {
  readonly channel: string;
  readonly offset: number;
  readonly data: string;
}): string {
  return `["${pub.channel}",${pub.offset},${pub.data}]`;
}

/** A message for one user's connections (FIFO `{"user":…,"data":…}`); `data` is JSON text. */
export function encodeUserMessage(data: string): string {
  return `{"type":"message","data":${data}}`;
}

/** An error reply; `id` and `channel` say which request and channel it answers. */
export function encodeError(error: {
  readonly code: number;
  readonly reason: string;
  readonly id?: RequestId;
  readonly channel?: string;
}): string {
  const channel = error.channel === undefined ? "" : `,"channel":${JSON.stringify(error.channel)}`;
  return `{"type":"error",${idField(error.id)}"code":${error.code},"reason":${
    JSON.stringify(error.reason)
  }${channel}}`;
}

/** The reply to a ping. */
export function encodePong(id?: RequestId): string {
  return id === undefined ? '{"type":"pong"}' : `{"type":"pong","id":${JSON.stringify(id)}}`;
}

// Owns the closed set of ways a connection can fail: each kind has a name (for logs, metrics and
// tests to count), the close code it is closed with, and a text (like ws's WS_ERR_* codes).

import { CloseCode, PushCloseCode } from "./close_codes.ts";

interface FailureSpec {
  readonly code: number;
  readonly text: string;
}

/** Every failure kind, with its close code and the reason text sent with it. */
export const FAILURES = {
  // RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated".
  "reserved-bits": { code: CloseCode.PROTOCOL_ERROR, text: "reserved bits are set" },
  "reserved-opcode": { code: CloseCode.PROTOCOL_ERROR, text: "reserved opcode" },
  // RFC 6455 §5.1: a server MUST close on an unmasked frame; a client on a masked one.
  "unmasked-frame": { code: CloseCode.PROTOCOL_ERROR, text: "client frame is not masked" },
  "masked-frame": { code: CloseCode.PROTOCOL_ERROR, text: "server frame is masked" },
  // RFC 6455 §5.5: control frames are at most 125 bytes and never fragmented.
  "fragmented-control": { code: CloseCode.PROTOCOL_ERROR, text: "fragmented control frame" },
  "control-too-long": { code: CloseCode.PROTOCOL_ERROR, text: "control frame over 125 bytes" },
  // RFC 6455 §5.4: fragments of one message are not interleaved with another message.
  "orphan-continuation": {
    code: CloseCode.PROTOCOL_ERROR,
    text: "continuation frame without a message to continue",
  },
  "interleaved-message": {
    code: CloseCode.PROTOCOL_ERROR,
    text: "new message started inside a fragmented message",
  },
  // RFC 6455 §5.2: "the most significant bit MUST be 0".
  "length-top-bit": {
    code: CloseCode.PROTOCOL_ERROR,
    text: "64-bit payload length has its top bit set",
  },
  // RFC 6455 §10.4: a legal length beyond what we can handle is "too big" (1009).
  "length-too-large": { code: CloseCode.MESSAGE_TOO_BIG, text: "payload length over 2^53 - 1" },
  "message-too-big": { code: CloseCode.MESSAGE_TOO_BIG, text: "message too big" },
  "too-many-fragments": { code: CloseCode.MESSAGE_TOO_BIG, text: "message in too many frames" },
  // RFC 6455 §8.1: text that is not valid UTF-8 fails the connection with 1007.
  "invalid-utf8": { code: CloseCode.INVALID_PAYLOAD_DATA, text: "invalid UTF-8 in text message" },
  // RFC 7692 §7.2.2: a compressed message that does not inflate is invalid data.
  "invalid-compressed-data": {
    code: CloseCode.INVALID_PAYLOAD_DATA,
    text: "invalid compressed data",
  },
  "truncated-utf8": {
    code: CloseCode.INVALID_PAYLOAD_DATA,
    text: "text message ends inside a UTF-8 sequence",
  },
  // RFC 6455 §5.5.1, §7.4: a Close body is empty, or a valid code and a UTF-8 reason.
  "close-body-1-byte": { code: CloseCode.PROTOCOL_ERROR, text: "close frame with a 1-byte body" },
  "invalid-close-code": { code: CloseCode.PROTOCOL_ERROR, text: "close frame with invalid code" },
  "invalid-close-reason": {
    code: CloseCode.INVALID_PAYLOAD_DATA,
    text: "close reason is not valid UTF-8",
  },
  // Policy: the server's own reasons to end a connection.
  "slow-consumer": { code: PushCloseCode.SLOW_CONSUMER, text: "slow consumer" },
  "rate-limited": { code: PushCloseCode.RATE_LIMITED, text: "message rate exceeded" },
  // STYLE rule 4: an internal bug closes with 1011 and tells the peer nothing more.
  "internal-error": { code: CloseCode.INTERNAL_ERROR, text: "" },
  // Timeouts end TCP without a Close frame: 1006 is what the handlers' close event reports.
  "handshake-timeout": { code: CloseCode.ABNORMAL_CLOSURE, text: "handshake timeout" },
  "pong-timeout": { code: CloseCode.ABNORMAL_CLOSURE, text: "pong timeout" },
  "close-timeout": { code: CloseCode.ABNORMAL_CLOSURE, text: "close timeout" },
} as const satisfies Record<string, FailureSpec>;

/** The name of one way a connection can fail. */
export type FailureKind = keyof typeof FAILURES;

/** Every failure kind, for metrics that list them all from the start. */
export const FAILURE_KINDS = Object.keys(FAILURES) as readonly FailureKind[];

/** A failure as it happened: its kind, close code, and reason (the kind's text, or more). */
export interface Failure {
  readonly kind: FailureKind;
  readonly code: number;
  readonly reason: string;
}

/** The failure of `kind`; `detail` replaces the kind's text as the reason when given. */
export function failure(kind: FailureKind, detail?: string): Failure {
  const spec: FailureSpec = FAILURES[kind];
  return { kind, code: spec.code, reason: detail ?? spec.text };
}

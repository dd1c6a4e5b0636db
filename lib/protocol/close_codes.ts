// Owns the WebSocket close codes (IANA registry, RFC 6455 §7.4) and the rule for which may be sent.

/** Close status codes by their IANA names. */
export const CloseCode = {
  NORMAL_CLOSURE: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  /** Reserved: never sent on the wire (RFC 6455 §7.4.1). */
  NO_STATUS_RECEIVED: 1005,
  /** Reserved: never sent on the wire (RFC 6455 §7.4.1). */
  ABNORMAL_CLOSURE: 1006,
  INVALID_PAYLOAD_DATA: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * push-server's own close codes, in the private range 4000–4999 (RFC 6455 §7.4.2). The README's
 * "Close codes" table lists every code the server sends and what a client should do on it.
 */
export const PushCloseCode = {
  /** The client read too slowly and its queue overflowed: reconnect at once, and resume. */
  SLOW_CONSUMER: 4000,
  /** The client sent messages faster than allowed: reconnect only after a back-off. */
  RATE_LIMITED: 4001,
  /** A malformed or unknown operation of the push protocol: a client bug; do not reconnect. */
  BAD_REQUEST: 4002,
  /** The token is missing, malformed, wrongly signed or not yet valid: do not reconnect as is. */
  UNAUTHORIZED: 4003,
  /** The token expired: fetch a new token, then reconnect. */
  TOKEN_EXPIRED: 4004,
  /** A channel the client may not subscribe to: do not retry that subscription. */
  FORBIDDEN: 4005,
  /** The application disconnected this client (a FIFO command or a handler): do not reconnect. */
  DISCONNECTED: 4006,
} as const;

export type PushCloseCode = (typeof PushCloseCode)[keyof typeof PushCloseCode];

/** What a client should do after a close with a given code. */
export type CloseAdvice = "reconnect" | "backoff" | "refresh-token" | "give-up";

/** The advice for each code the server sends; any other code: back off, then reconnect. */
export function closeAdvice(code: number): CloseAdvice {
  switch (code) {
    case PushCloseCode.SLOW_CONSUMER:
      return "reconnect";
    case PushCloseCode.TOKEN_EXPIRED:
      return "refresh-token";
    case CloseCode.NORMAL_CLOSURE:
    case CloseCode.PROTOCOL_ERROR:
    case CloseCode.UNSUPPORTED_DATA:
    case CloseCode.INVALID_PAYLOAD_DATA:
    case CloseCode.POLICY_VIOLATION:
    case CloseCode.MESSAGE_TOO_BIG:
    case PushCloseCode.BAD_REQUEST:
    case PushCloseCode.UNAUTHORIZED:
    case PushCloseCode.FORBIDDEN:
    case PushCloseCode.DISCONNECTED:
      return "give-up";
    default:
      // 1001 going away, 1006 abnormal, 1011 internal error, 1013 try again later, 4001 rate
      // limited, and anything unknown.
      return "backoff";
  }
}

/** The range 3000–4999 is for libraries, frameworks and applications (RFC 6455 §7.4.2). */
const FIRST_REGISTERED = 3000;
const LAST_PRIVATE = 4999;

/**
 * Whether `code` may appear in a Close frame on the wire.
 * RFC 6455 §7.4.1 defines 1000–1003 and 1007–1011; IANA added 1012–1014.
 * 1004 is reserved, 1005, 1006 and 1015 must never be sent, the rest of 1000–2999 is
 * reserved for future use, and 3000–4999 are open to applications.
 */
export function isValidCloseCode(code: number): boolean {
  if (code >= FIRST_REGISTERED && code <= LAST_PRIVATE) return true;
  switch (code) {
    case CloseCode.NORMAL_CLOSURE:
    case CloseCode.GOING_AWAY:
    case CloseCode.PROTOCOL_ERROR:
    case CloseCode.UNSUPPORTED_DATA:
    case CloseCode.INVALID_PAYLOAD_DATA:
    case CloseCode.POLICY_VIOLATION:
    case CloseCode.MESSAGE_TOO_BIG:
    case CloseCode.MANDATORY_EXTENSION:
    case CloseCode.INTERNAL_ERROR:
    case CloseCode.SERVICE_RESTART:
    case CloseCode.TRY_AGAIN_LATER:
    case CloseCode.BAD_GATEWAY:
      return true;
    default:
      return false;
  }
}

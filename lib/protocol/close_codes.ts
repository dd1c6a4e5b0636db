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

// Owns verifying a push-server token: a JWT (RFC 7519) signed with HS256, RS256 or ES256, checked
// with npm:jose, and turned into a value — the user, the channel grants and the expiry — or the
// close code and reason the client sees. No I/O: keys come from lib/auth/keys.ts, time is passed
// in. No crypto is written here; jose does the verifying.
//
// Claims:
// - `sub`      (required) the user, a non-empty string: the identity presence lists;
// - `channels` (required) a list of grants, see lib/policy/grants.ts (`news`, `news.*`, `*`);
// - `exp`      (required) expiry, seconds since the epoch (RFC 7519 §4.1.4);
// - `nbf`, `iat` (optional) not-before and issued-at (RFC 7519 §4.1.5, §4.1.6).
// Other claims are ignored.

import { errors, jwtVerify } from "jose";
import type { CryptoKey, JWTHeaderParameters } from "jose";
import { PushCloseCode } from "../protocol/close_codes.ts";
import { type Grants, GRANTS_ERROR_TEXT, parseGrants } from "../policy/grants.ts";

/** The signature algorithms push-server accepts, each tied to one kind of key. */
export type TokenAlgorithm = "HS256" | "RS256" | "ES256";

/** The keys tokens are checked with; only the algorithms present are accepted (no `none`, and no
 * algorithm confusion: an HS256 token is never checked against a public key). */
export interface TokenKeys {
  /** HMAC key for HS256: the bytes of `PUSH_TOKEN_SECRET`. */
  readonly HS256?: Uint8Array;
  /** RSA public key for RS256 (RSASSA-PKCS1-v1_5 with SHA-256). */
  readonly RS256?: CryptoKey;
  /** P-256 public key for ES256 (ECDSA with SHA-256). */
  readonly ES256?: CryptoKey;
}

/** Longest token accepted, in characters; a longer one is refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;
/** Longest user (`sub`) accepted, in UTF-16 code units: presence lists it to other clients. */
export const MAX_USER_LENGTH = 256;

/** Why a token was refused: a closed set, for logs, metrics and tests. */
export type TokenFailure =
  | "missing"
  | "too-long"
  | "malformed"
  | "algorithm"
  | "signature"
  | "not-yet-valid"
  | "expired"
  | "claims";

export type TokenResult =
  | {
    readonly ok: true;
    /** The `sub` claim. */
    readonly user: string;
    readonly grants: Grants;
    /** When the token expires, in milliseconds since the epoch (`exp` × 1000). */
    readonly expiresAt: number;
  }
  | {
    readonly ok: false;
    /** UNAUTHORIZED (4003), or TOKEN_EXPIRED (4004) for an expired token. */
    readonly code: typeof PushCloseCode.UNAUTHORIZED | typeof PushCloseCode.TOKEN_EXPIRED;
    readonly failure: TokenFailure;
    /** One short line for the close reason (well under the 123 bytes a Close frame allows). */
    readonly reason: string;
  };

export interface VerifyOptions {
  readonly keys: TokenKeys;
  /** The current time in milliseconds since the epoch. */
  readonly now: number;
  /** Seconds of clock skew allowed on `exp` and `nbf`; 0 unless given. */
  readonly clockTolerance?: number;
}

const MS_PER_SECOND = 1000;

/** Verifies `token` (whatever the client sent in its place) and reads its claims. Never throws
 * for anything a client can send. */
export async function verifyToken(token: unknown, options: VerifyOptions): Promise<TokenResult> {
  if (typeof token !== "string" || token === "") return unauthorized("missing", "token missing");
  if (token.length > MAX_TOKEN_LENGTH) return unauthorized("too-long", "token too long");
  const algorithms = acceptedAlgorithms(options.keys);
  if (algorithms.length === 0) throw new TypeError("verifyToken needs at least one key");
  let payload: Record<string, unknown>;
  try {
    const verified = await jwtVerify(token, (header: JWTHeaderParameters) => {
      const key = options.keys[header.alg as TokenAlgorithm];
      // jose checks `alg` against `algorithms` before asking for the key.
      if (key === undefined) throw new errors.JOSEAlgNotAllowed("algorithm not accepted");
      return key;
    }, {
      algorithms,
      currentDate: new Date(options.now),
      clockTolerance: options.clockTolerance ?? 0,
      requiredClaims: ["exp"],
    });
    payload = verified.payload as Record<string, unknown>;
  } catch (e) {
    return fromJoseError(e);
  }
  const sub = payload.sub;
  if (sub === undefined) return unauthorized("claims", "token claim sub missing");
  if (typeof sub !== "string" || sub === "") {
    return unauthorized("claims", "token claim sub is not a non-empty string");
  }
  if (sub.length > MAX_USER_LENGTH) {
    return unauthorized("claims", `token claim sub is over ${MAX_USER_LENGTH} characters`);
  }
  if (payload.channels === undefined) return unauthorized("claims", "token claim channels missing");
  const grants = parseGrants(payload.channels);
  if (!grants.ok) return unauthorized("claims", GRANTS_ERROR_TEXT[grants.error]);
  return {
    ok: true,
    user: sub,
    grants: grants.grants,
    expiresAt: (payload.exp as number) * MS_PER_SECOND,
  };
}

/** The algorithms `keys` can check, in a fixed order. */
export function acceptedAlgorithms(keys: TokenKeys): TokenAlgorithm[] {
  return (["HS256", "RS256", "ES256"] as const).filter((alg) => keys[alg] !== undefined);
}

function unauthorized(failure: TokenFailure, reason: string): TokenResult {
  return { ok: false, code: PushCloseCode.UNAUTHORIZED, failure, reason };
}

function fromJoseError(e: unknown): TokenResult {
  if (e instanceof errors.JWTExpired) {
    return {
      ok: false,
      code: PushCloseCode.TOKEN_EXPIRED,
      failure: "expired",
      reason: "token expired",
    };
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === "nbf" && e.reason === "check_failed") {
      return unauthorized("not-yet-valid", "token not yet valid");
    }
    if (e.reason === "missing") return unauthorized("claims", `token claim ${e.claim} missing`);
    return unauthorized("claims", `token claim ${e.claim} invalid`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return unauthorized("signature", "token signature invalid");
  }
  if (e instanceof errors.JOSEAlgNotAllowed || e instanceof errors.JOSENotSupported) {
    return unauthorized("algorithm", "token algorithm not accepted");
  }
  // JWSInvalid, JWTInvalid, and whatever else a mangled token provokes.
  return unauthorized("malformed", "token malformed");
}

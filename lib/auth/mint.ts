// Owns minting push-server tokens for tests, demos and applications written in TypeScript: the
// same claims that lib/auth/token.ts checks and examples/push_token.php writes. Time is passed in.

import { SignJWT } from "jose";
import type { CryptoKey } from "jose";

export interface MintOptions {
  /** The user, the `sub` claim. */
  readonly sub: string;
  /** The grants, the `channels` claim: exact names and `prefix*` patterns. */
  readonly channels: readonly string[];
  /** Seconds from `now` to `exp`. */
  readonly ttl: number;
  /** The current time in milliseconds since the epoch; `iat` is taken from it. */
  readonly now: number;
  /** Seconds from `now` before which the token is not valid (`nbf`); none unless given. */
  readonly notBefore?: number;
}

const MS_PER_SECOND = 1000;

/** An HS256 token signed with `secret` (the bytes of PUSH_TOKEN_SECRET). */
export function mintToken(secret: Uint8Array | CryptoKey, options: MintOptions): Promise<string> {
  const alg = secret instanceof Uint8Array ? "HS256" : algorithmOf(secret);
  const iat = Math.floor(options.now / MS_PER_SECOND);
  // Claims in the order examples/push_token.php writes them, so both mint identical tokens.
  const claims: Record<string, unknown> = {
    sub: options.sub,
    channels: [...options.channels],
    iat,
    exp: iat + options.ttl,
  };
  if (options.notBefore !== undefined) claims.nbf = iat + options.notBefore;
  const jwt = new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" });
  return jwt.sign(secret);
}

/** RS256 for an RSA private key, ES256 for a P-256 one. */
function algorithmOf(key: CryptoKey): "RS256" | "ES256" {
  if (key.algorithm.name === "ECDSA") return "ES256";
  if (key.algorithm.name === "RSASSA-PKCS1-v1_5") return "RS256";
  throw new TypeError(`mintToken: cannot sign with a ${key.algorithm.name} key`);
}

const TTL_UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };

/** "90", "90s", "15m", "1h", "7d" → seconds; undefined unless a positive whole number. */
export function parseTtl(raw: string): number | undefined {
  const m = /^(\d+)([smhd]?)$/.exec(raw.trim());
  if (!m) return undefined;
  const seconds = Number(m[1]) * TTL_UNITS[m[2]];
  return seconds > 0 && Number.isSafeInteger(seconds) ? seconds : undefined;
}

// Owns loading the keys push-server checks tokens with: the HS256 secret (`--token-secret` or
// `PUSH_TOKEN_SECRET`) and an RS256/ES256 public key from a PEM file (`--token-public-key`).
// Errors are values holding one line for the user.

import { importSPKI, importX509 } from "jose";
import type { CryptoKey } from "jose";
import type { TokenAlgorithm, TokenKeys } from "./token.ts";

/** The environment variable that holds the HS256 secret, across the project and its examples. */
export const TOKEN_SECRET_VARIABLE = "PUSH_TOKEN_SECRET";

/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits). */
export const MIN_SECRET_LENGTH = 32;

export type KeysResult =
  | { readonly ok: true; readonly keys: TokenKeys }
  | { readonly ok: false; readonly message: string };

export interface KeySources {
  /** The HS256 secret, as given; undefined or "" for none. */
  readonly secret?: string;
  /** Path of a PEM file holding an SPKI public key (`BEGIN PUBLIC KEY`) or an X.509 certificate
   * (`BEGIN CERTIFICATE`) with an RSA (RS256) or P-256 (ES256) key; undefined or "" for none. */
  readonly publicKeyFile?: string;
}

/**
 * The keys from the configured sources, or undefined when none is configured (tokens are then
 * not required). Reads the public key file if one is named.
 */
export async function loadTokenKeys(
  sources: KeySources,
): Promise<KeysResult | undefined> {
  const secret = sources.secret ?? "";
  const file = sources.publicKeyFile ?? "";
  if (secret === "" && file === "") return undefined;
  const keys: { HS256?: Uint8Array; RS256?: CryptoKey; ES256?: CryptoKey } = {};
  if (secret !== "") {
    const hs = secretKey(secret);
    if (!hs.ok) return hs;
    keys.HS256 = hs.key;
  }
  if (file !== "") {
    let pem: string;
    try {
      pem = await Deno.readTextFile(file);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "no such file"
        : e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied
        ? "not allowed to read it (--allow-read)"
        : e instanceof Error
        ? e.message
        : String(e);
      return { ok: false, message: `--token-public-key ${file}: ${why}` };
    }
    const key = await publicKey(pem);
    if (!key.ok) return { ok: false, message: `--token-public-key ${file}: ${key.message}` };
    keys[key.algorithm] = key.key;
  }
  return { ok: true, keys };
}

/** The HS256 key for `secret`, refusing a secret too short to be safe. */
export function secretKey(
  secret: string,
): { readonly ok: true; readonly key: Uint8Array } | {
  readonly ok: false;
  readonly message: string;
} {
  const key = new TextEncoder().encode(secret);
  if (key.length < MIN_SECRET_LENGTH) {
    return {
      ok: false,
      message:
        `--token-secret / ${TOKEN_SECRET_VARIABLE} must hold a secret of at least ${MIN_SECRET_LENGTH} characters`,
    };
  }
  return { ok: true, key };
}

/** The public key in a PEM text and the one algorithm it is for: RSA → RS256, P-256 → ES256. */
export async function publicKey(pem: string): Promise<
  | { readonly ok: true; readonly algorithm: "RS256" | "ES256"; readonly key: CryptoKey }
  | { readonly ok: false; readonly message: string }
> {
  const importer = pem.includes("-----BEGIN CERTIFICATE-----")
    ? importX509
    : pem.includes("-----BEGIN PUBLIC KEY-----")
    ? importSPKI
    : undefined;
  if (importer === undefined) {
    return {
      ok: false,
      message: "expected a PEM public key (BEGIN PUBLIC KEY) or certificate (BEGIN CERTIFICATE)",
    };
  }
  for (const algorithm of ["RS256", "ES256"] as const satisfies readonly TokenAlgorithm[]) {
    try {
      return { ok: true, algorithm, key: await importer(pem, algorithm) };
    } catch {
      // Not a key for this algorithm; try the next.
    }
  }
  return { ok: false, message: "not an RSA or P-256 public key" };
}

// Owns channel grants: the `channels` claim of a push-server token, parsed into a set of exact
// names and prefix patterns, and the one rule that says whether the grants allow a channel.
//
// A grant is one of:
// - an exact channel name, `news` or `user:42`: allows that channel only;
// - a pattern, a prefix followed by one trailing `*`, `news.*` or `user:*`: allows every channel
//   that starts with the prefix and has at least one more character (`news.sport`,
//   `news.sport.uk`, `user:7`), but not the prefix alone (`news.`) nor `news`;
// - `*` alone: allows every channel.
// A `*` anywhere but at the end of a grant makes the claim invalid, so that a grant never means
// something other than it reads. Grants only widen: there is no negation.

/** At most this many grants in one token: a claim is a list, not a database. */
export const MAX_GRANTS = 256;
/** At most this many UTF-16 code units in one grant. */
export const MAX_GRANT_LENGTH = 200;

const WILDCARD = "*";

/** Why a `channels` claim was refused; each kind has a fixed text for the close reason. */
export type GrantsError =
  | "not-a-list"
  | "too-many"
  | "not-a-string"
  | "empty"
  | "too-long"
  | "misplaced-wildcard";

/** The text a client sees in the close reason for each grants error. */
export const GRANTS_ERROR_TEXT: Readonly<Record<GrantsError, string>> = {
  "not-a-list": "token claim channels is not a list",
  "too-many": `token claim channels has more than ${MAX_GRANTS} grants`,
  "not-a-string": "token claim channels holds a non-string",
  "empty": "token claim channels holds an empty grant",
  "too-long": `token claim channels holds a grant over ${MAX_GRANT_LENGTH} characters`,
  "misplaced-wildcard": "token claim channels holds a * that is not at the end",
};

/** A parsed, immutable set of grants. */
export class Grants {
  readonly #exact: ReadonlySet<string>;
  /** Prefixes of the pattern grants, without the `*`; "" for the grant `*`. */
  readonly #prefixes: readonly string[];

  constructor(exact: Iterable<string>, prefixes: Iterable<string>) {
    this.#exact = new Set(exact);
    // A shorter prefix covers every longer one it starts: keep only the shortest.
    const sorted = [...new Set(prefixes)].sort((a, b) => a.length - b.length);
    const kept: string[] = [];
    for (const p of sorted) if (!kept.some((k) => p.startsWith(k))) kept.push(p);
    this.#prefixes = kept;
  }

  /** No grants at all: allows nothing. */
  static readonly NONE: Grants = new Grants([], []);

  /** Whether these grants allow subscribing to `channel`. Cost: one set lookup plus one
   * `startsWith` per distinct pattern. */
  allows(channel: string): boolean {
    if (this.#exact.has(channel)) return true;
    for (const prefix of this.#prefixes) {
      if (channel.length > prefix.length && channel.startsWith(prefix)) return true;
    }
    return false;
  }

  /** The grants as a token would list them (exact names, then patterns), sorted. */
  toList(): string[] {
    return [
      ...[...this.#exact].sort(),
      ...this.#prefixes.map((p) => `${p}${WILDCARD}`).sort(),
    ];
  }
}

/** Parses a `channels` claim. Errors are values. */
export function parseGrants(
  claim: unknown,
): { readonly ok: true; readonly grants: Grants } | {
  readonly ok: false;
  readonly error: GrantsError;
} {
  if (!Array.isArray(claim)) return { ok: false, error: "not-a-list" };
  if (claim.length > MAX_GRANTS) return { ok: false, error: "too-many" };
  const exact: string[] = [];
  const prefixes: string[] = [];
  for (const grant of claim) {
    if (typeof grant !== "string") return { ok: false, error: "not-a-string" };
    if (grant === "") return { ok: false, error: "empty" };
    if (grant.length > MAX_GRANT_LENGTH) return { ok: false, error: "too-long" };
    const star = grant.indexOf(WILDCARD);
    if (star === -1) {
      exact.push(grant);
    } else if (star === grant.length - 1) {
      prefixes.push(grant.slice(0, -1));
    } else {
      return { ok: false, error: "misplaced-wildcard" };
    }
  }
  return { ok: true, grants: new Grants(exact, prefixes) };
}

/**
 * The channels of `subscribed` that `grants` no longer allow, in the order given: what a token
 * refresh with narrower grants takes away.
 */
export function revokedChannels(grants: Grants, subscribed: Iterable<string>): string[] {
  const out: string[] = [];
  for (const channel of subscribed) if (!grants.allows(channel)) out.push(channel);
  return out;
}

// Owns one connection's authorization state for the push.v1 protocol: waiting for the `auth`
// operation, authenticated with a user, grants and an expiry, refreshed by a later `auth`, and
// the deadlines (the auth timeout, the token's expiry) at which the server must close it. Pure:
// the server verifies tokens (lib/auth/token.ts), passes the result and the time in, and acts on
// the values returned. See "Authorization" in README.md for the wire protocol.
//
//   awaiting ──auth ok──▶ authenticated ──auth ok, same user──▶ authenticated (refreshed)
//      │                     │
//      ├─auth refused──▶ closed (4003 / 4004)        ├─auth refused, or another user──▶ closed
//      ├─any other op──▶ closed (4003 auth required) └─tick at expiresAt──▶ closed (4004)
//      └─tick at the auth timeout──▶ closed (4003 auth timeout)
//
// When tokens are not required (no key configured) a session starts authenticated, with the
// identity `upgrade` attached (or none) and no restriction on channels beyond the `subscribe`
// hook; it never expires.

import { PushCloseCode } from "../protocol/close_codes.ts";
import { type Grants, revokedChannels } from "./grants.ts";

/** The result of verifying a token, as lib/auth/token.ts returns it (restated here so the pure
 * core does not import the I/O side). */
export type VerifiedToken =
  | {
    readonly ok: true;
    readonly user: string;
    readonly grants: Grants;
    readonly expiresAt: number;
  }
  | { readonly ok: false; readonly code: number; readonly reason: string };

/** A close the server must perform: send a Close frame with this code and reason. */
export interface AuthClose {
  readonly type: "close";
  readonly code: number;
  readonly reason: string;
}

/** What `accept` decides. */
export type AuthOutcome =
  | {
    readonly type: "authenticated";
    readonly user: string;
    readonly expiresAt: number;
    /** True for a refresh of an authenticated session. */
    readonly refreshed: boolean;
    /** Subscribed channels the new grants no longer allow: the server unsubscribes them. */
    readonly revoked: readonly string[];
  }
  | AuthClose;

/** What `authorize` decides for a subscribe (or presence query) on a channel. */
export type AuthDecision =
  | { readonly ok: true }
  /** Refuse the operation only: send an error with this code; the connection stays. */
  | { readonly ok: false; readonly type: "error"; readonly code: number; readonly reason: string }
  | ({ readonly ok: false } & AuthClose);

/** The reasons a client reads in a close or an error, by name. */
export const AuthReason = {
  AUTH_REQUIRED: 'auth required: send {"op":"auth"} first',
  AUTH_TIMEOUT: "auth timeout",
  TOKEN_EXPIRED: "token expired",
  USER_CHANGED: "token refresh changed the user",
  NOT_GRANTED: "channel not granted",
  AUTH_NOT_ENABLED: "tokens are not enabled on this server",
} as const;

export type AuthState = "awaiting" | "authenticated" | "closed";

export interface AuthSessionOptions {
  /** Whether a token is required (a key is configured). */
  readonly required: boolean;
  /** When the connection opened (ms since the epoch). */
  readonly now: number;
  /** How long to wait for the `auth` operation, in ms (when required). */
  readonly authTimeout: number;
  /** The identity `upgrade` attached, used when tokens are not required. */
  readonly identity?: string;
}

export class AuthSession {
  #state: AuthState;
  #user: string | null;
  /** null: every channel (tokens not required). */
  #grants: Grants | null = null;
  /** The next time `tick` must be called at, or null. */
  #deadline: number | null;
  #closed: AuthClose | null = null;

  constructor(options: AuthSessionOptions) {
    if (options.required) {
      this.#state = "awaiting";
      this.#user = null;
      this.#deadline = options.now + options.authTimeout;
    } else {
      this.#state = "authenticated";
      this.#user = options.identity ?? null;
      this.#deadline = null;
    }
  }

  get state(): AuthState {
    return this.#state;
  }

  /** The user presence lists this connection under, or null (anonymous). */
  get user(): string | null {
    return this.#user;
  }

  /** When the server must call `tick` next (ms since the epoch), or null for never. */
  get deadline(): number | null {
    return this.#deadline;
  }

  /**
   * Applies a verified `auth` operation: the first one authenticates, a later one refreshes
   * (same user; grants and expiry replaced). A refused token closes the connection with the
   * token's code (4003, or 4004 for an expired one), also on a refresh.
   */
  accept(
    token: VerifiedToken,
    context: { readonly now: number; readonly subscribed: Iterable<string> },
  ): AuthOutcome {
    if (this.#closed !== null) return this.#closed;
    if (!token.ok) return this.#close(token.code, token.reason);
    const refreshed = this.#state === "authenticated";
    if (refreshed && this.#user !== token.user) {
      return this.#close(PushCloseCode.UNAUTHORIZED, AuthReason.USER_CHANGED);
    }
    if (token.expiresAt <= context.now) {
      // Verified a moment ago but expired since (a slow verify at the edge of exp).
      return this.#close(PushCloseCode.TOKEN_EXPIRED, AuthReason.TOKEN_EXPIRED);
    }
    this.#state = "authenticated";
    this.#user = token.user;
    this.#grants = token.grants;
    this.#deadline = token.expiresAt;
    return {
      type: "authenticated",
      user: token.user,
      expiresAt: token.expiresAt,
      refreshed,
      revoked: refreshed ? revokedChannels(token.grants, context.subscribed) : [],
    };
  }

  /**
   * Whether an operation other than `auth` may proceed now. Before authentication, any such
   * operation closes the connection: the client must send `auth` first.
   */
  admit(now: number): { readonly ok: true } | ({ readonly ok: false } & AuthClose) {
    if (this.#closed !== null) return { ok: false, ...this.#closed };
    const expired = this.tick(now);
    if (expired !== null) return { ok: false, ...expired };
    if (this.#state === "awaiting") {
      return { ok: false, ...this.#close(PushCloseCode.UNAUTHORIZED, AuthReason.AUTH_REQUIRED) };
    }
    return { ok: true };
  }

  /** Whether this connection may subscribe to (or query the presence of) `channel` now. */
  authorize(channel: string, now: number): AuthDecision {
    const admitted = this.admit(now);
    if (!admitted.ok) return admitted;
    if (this.#grants !== null && !this.#grants.allows(channel)) {
      return {
        ok: false,
        type: "error",
        code: PushCloseCode.FORBIDDEN,
        reason: AuthReason.NOT_GRANTED,
      };
    }
    return { ok: true };
  }

  /** Called at `deadline` (or any time): the close that is due, or null. Timers may fire late;
   * they never fire early in effect, since the time is compared here. */
  tick(now: number): AuthClose | null {
    if (this.#closed !== null) return this.#closed;
    if (this.#deadline === null || now < this.#deadline) return null;
    return this.#state === "awaiting"
      ? this.#close(PushCloseCode.UNAUTHORIZED, AuthReason.AUTH_TIMEOUT)
      : this.#close(PushCloseCode.TOKEN_EXPIRED, AuthReason.TOKEN_EXPIRED);
  }

  #close(code: number, reason: string): AuthClose {
    this.#state = "closed";
    this.#deadline = null;
    this.#closed = { type: "close", code, reason };
    return this.#closed;
  }
}

/** The server's reply to an accepted `auth` operation (first or refresh), as a push.v1 text. */
export function authedMessage(
  outcome: { readonly user: string; readonly expiresAt: number },
): string {
  return JSON.stringify({ type: "authed", user: outcome.user, expiresAt: outcome.expiresAt });
}

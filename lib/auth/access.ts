// Owns the one object the server calls for authorization and presence: per connection an
// AuthSession (lib/policy/auth_session.ts), the token check (lib/auth/token.ts), and the presence
// table (lib/channels/presence.ts) with the join/leave texts to fan out. It holds no timers and
// reads no clock: the server passes the time in and arms one timer per connection at
// `deadline(conn)`. `C` identifies a connection (the connection object or its id).
//
// The server's calls, in order (see "Authorization and presence" in README.md):
//   open(conn, {now, identity})        when a push.v1 connection is established
//   await auth(conn, token, {now, …})  on {"op":"auth","token":…}; first or refresh
//   admit(conn, now)                   before any other operation (heartbeat, unsubscribe, …)
//   authorize(conn, channel, now)      before a subscribe or a presence query
//   subscribed(conn, channel)          after the subscription is in place → join to fan out
//   unsubscribed(conn, channel)        after an unsubscribe or a revocation → leave to fan out
//   tick(conn, now)                    when the timer at deadline(conn) fires
//   closed(conn)                       when the connection is gone, however → leaves to fan out

import type { Grants } from "../policy/grants.ts";
import {
  type AuthClose,
  type AuthDecision,
  type AuthOutcome,
  AuthSession,
} from "../policy/auth_session.ts";
import { Presence, type PresenceChange, presenceChangeMessage } from "../channels/presence.ts";
import type { TokenKeys } from "./token.ts";

/** How long a push.v1 connection may take to send `auth` when tokens are required. */
export const DEFAULT_AUTH_TIMEOUT = 10_000;

export interface AccessOptions {
  /** The keys tokens are checked with; undefined when tokens are not required. */
  readonly keys: TokenKeys | undefined;
  /** ms to wait for the `auth` operation; DEFAULT_AUTH_TIMEOUT unless given. */
  readonly authTimeout?: number;
  /** Seconds of clock skew allowed on `exp` and `nbf`. */
  readonly clockTolerance?: number;
  /** The channels whose subscribers are sent join and leave events (`--presence-events`, in the
   * grant syntax: `room.*`, `*`); none unless given. */
  readonly presenceEvents?: Grants;
}

/** A presence change and, when the channel sends events, its text to send to every subscriber
 * of `change.channel` (encoded once). */
export interface PresenceNotice {
  readonly change: PresenceChange;
  /** null when the channel does not send join/leave events. */
  readonly message: string | null;
}

export class Access<C> {
  readonly #options: AccessOptions;
  readonly #sessions = new Map<C, AuthSession>();
  /** Who is on which channel; handlers may query it (read-only use). */
  readonly presence: Presence<C> = new Presence<C>();

  constructor(options: AccessOptions) {
    this.#options = options;
  }

  /** Whether a token is required of push.v1 connections. */
  get required(): boolean {
    return this.#options.keys !== undefined;
  }

  /** Starts tracking a push.v1 connection. `identity` is the user `upgrade` attached, used when
   * tokens are not required. Then arm the timer at `deadline(conn)`. */
  open(conn: C, context: { readonly now: number; readonly identity?: string }): void {
    this.#sessions.set(
      conn,
      new AuthSession({
        required: this.required,
        now: context.now,
        authTimeout: this.#options.authTimeout ?? DEFAULT_AUTH_TIMEOUT,
        identity: context.identity,
      }),
    );
  }

  /**
   * Handles `{"op":"auth","token":…}`. Awaits the signature check, so the server must hold the
   * connection's later operations until it settles (process each connection's operations in
   * order). `now` is read when the operation arrived; `subscribed` lists the connection's
   * channels (for a refresh). Returns null when the connection was closed meanwhile, or when
   * tokens are not enabled (`required` false: answer error 4002 AuthReason.AUTH_NOT_ENABLED).
   * On "authenticated": send `authedMessage(outcome)`, unsubscribe each `revoked` channel (and
   * call `unsubscribed`), re-arm the timer at `deadline(conn)`. On "close": close with it.
   */
  async auth(
    conn: C,
    token: unknown,
    context: { readonly now: number; readonly subscribed: Iterable<string> },
  ): Promise<AuthOutcome | null> {
    const keys = this.#options.keys;
    if (keys === undefined || !this.#sessions.has(conn)) return null;
    // Loaded at the first token: npm:jose is needed only when tokens are in use.
    const { verifyToken } = await import("./token.ts");
    const verified = await verifyToken(token, {
      keys,
      now: context.now,
      clockTolerance: this.#options.clockTolerance,
    });
    return this.#sessions.get(conn)?.accept(verified, context) ?? null;
  }

  /** Before any operation other than `auth`, subscribe and presence: may it proceed? */
  admit(conn: C, now: number): { readonly ok: true } | ({ readonly ok: false } & AuthClose) {
    return this.#session(conn).admit(now);
  }

  /** Before a subscribe or a presence query on `channel`. An "error" refuses that operation
   * only (4005 channel not granted); a "close" closes the connection. */
  authorize(conn: C, channel: string, now: number): AuthDecision {
    return this.#session(conn).authorize(channel, now);
  }

  /** After `conn` is subscribed to `channel`: the join to fan out, if the user just joined. */
  subscribed(conn: C, channel: string): PresenceNotice | null {
    const user = this.#session(conn).user;
    if (user === null) return null;
    return this.#notice(this.presence.add(conn, { channel, user }));
  }

  /** After `conn` left `channel`: the leave to fan out, if it was the user's last connection. */
  unsubscribed(conn: C, channel: string): PresenceNotice | null {
    return this.#notice(this.presence.remove(conn, channel));
  }

  /** When the server must call `tick(conn, …)` next, or null for no timer. */
  deadline(conn: C): number | null {
    return this.#sessions.get(conn)?.deadline ?? null;
  }

  /** The timer at `deadline(conn)` fired: the close that is due (4003 auth timeout, 4004 token
   * expired), or null (the deadline moved: re-arm). */
  tick(conn: C, now: number): AuthClose | null {
    return this.#sessions.get(conn)?.tick(now) ?? null;
  }

  /** The user of `conn`, or null (anonymous, or not yet authenticated). */
  userOf(conn: C): string | null {
    return this.#sessions.get(conn)?.user ?? null;
  }

  /** The connection is gone (Close, error, liveness timeout): forget it; the leaves to fan out
   * to the remaining subscribers. */
  closed(conn: C): PresenceNotice[] {
    this.#sessions.delete(conn);
    const notices: PresenceNotice[] = [];
    for (const change of this.presence.removeConnection(conn)) {
      const notice = this.#notice(change);
      if (notice !== null) notices.push(notice);
    }
    return notices;
  }

  #session(conn: C): AuthSession {
    const session = this.#sessions.get(conn);
    if (session === undefined) throw new Error("Access: connection was not opened");
    return session;
  }

  #notice(change: PresenceChange | null): PresenceNotice | null {
    if (change === null) return null;
    const events = this.#options.presenceEvents;
    const message = events?.allows(change.channel) ? presenceChangeMessage(change) : null;
    return { change, message };
  }
}

// Owns presence: per channel, which users are subscribed and with how many connections, and the
// join/leave transitions. A user joins a channel with their first connection on it and leaves with
// their last, so a user with three tabs open is one member and produces one join and one leave.
//
// Only connections with a user are tracked (the token's `sub`, or the identity `upgrade`
// attached); anonymous connections are not members. Every count is O(1); every update is O(1)
// except `removeConnection`, which is O(channels of that connection).

/** A user's arrival on or departure from a channel; what the server sends to subscribers. */
export type PresenceChange = {
  readonly type: "join" | "leave";
  readonly channel: string;
  readonly user: string;
};

/** One member of a channel, as a presence query lists it. */
export interface PresenceMember {
  readonly user: string;
  /** How many of the user's connections are subscribed to the channel (at least 1). */
  readonly connections: number;
}

interface ChannelPresence {
  /** user → number of that user's connections on this channel (never 0: removed instead). */
  readonly users: Map<string, number>;
  connections: number;
}

/** What handlers may ask of presence (`server.presence`): read-only, every call O(1) but
 * `members`, which is O(limit). */
export interface PresenceQuery {
  userCount(channel: string): number;
  connectionCount(channel: string): number;
  has(channel: string, user: string): boolean;
  members(channel: string, limit?: number): PresenceMember[];
}

/**
 * The presence table. `C` is whatever identifies a connection to the server (the connection
 * object itself, or its id): compared with `===`.
 */
export class Presence<C> implements PresenceQuery {
  readonly #channels = new Map<string, ChannelPresence>();
  /** connection → channel → user: what to undo when the connection goes. */
  readonly #byConnection = new Map<C, Map<string, string>>();

  /**
   * Records that `connection`, held by `user`, is now subscribed to `channel`. Returns the join
   * when it is the user's first connection on the channel, else null. Adding the same
   * connection to the same channel again changes nothing and returns null.
   */
  add(
    connection: C,
    member: { readonly channel: string; readonly user: string },
  ): PresenceChange | null {
    const { channel, user } = member;
    let mine = this.#byConnection.get(connection);
    if (mine?.has(channel)) return null;
    if (mine === undefined) {
      mine = new Map();
      this.#byConnection.set(connection, mine);
    }
    mine.set(channel, user);
    let here = this.#channels.get(channel);
    if (here === undefined) {
      here = { users: new Map(), connections: 0 };
      this.#channels.set(channel, here);
    }
    here.connections++;
    const before = here.users.get(user) ?? 0;
    here.users.set(user, before + 1);
    return before === 0 ? { type: "join", channel, user } : null;
  }

  /**
   * Records that `connection` left `channel` (an unsubscribe). Returns the leave when it was its
   * user's last connection there, else null (also when the connection was not on the channel).
   */
  remove(connection: C, channel: string): PresenceChange | null {
    const mine = this.#byConnection.get(connection);
    const user = mine?.get(channel);
    if (mine === undefined || user === undefined) return null;
    mine.delete(channel);
    if (mine.size === 0) this.#byConnection.delete(connection);
    const here = this.#channels.get(channel);
    if (here === undefined) throw new Error(`presence of ${channel} lost track of a connection`);
    here.connections--;
    const left = (here.users.get(user) ?? 0) - 1;
    if (left > 0) {
      here.users.set(user, left);
      return null;
    }
    here.users.delete(user);
    if (here.users.size === 0) this.#channels.delete(channel);
    return { type: "leave", channel, user };
  }

  /** Removes `connection` from every channel (it closed, or was dropped by the liveness timeout);
   * returns the leaves, in the order the connection joined the channels. */
  removeConnection(connection: C): PresenceChange[] {
    const mine = this.#byConnection.get(connection);
    if (mine === undefined) return [];
    const leaves: PresenceChange[] = [];
    for (const channel of [...mine.keys()]) {
      const change = this.remove(connection, channel);
      if (change !== null) leaves.push(change);
    }
    return leaves;
  }

  /** How many distinct users are on `channel`. O(1). */
  userCount(channel: string): number {
    return this.#channels.get(channel)?.users.size ?? 0;
  }

  /** How many identified connections are on `channel`. O(1). */
  connectionCount(channel: string): number {
    return this.#channels.get(channel)?.connections ?? 0;
  }

  /** Whether `user` has at least one connection on `channel`. O(1). */
  has(channel: string, user: string): boolean {
    return this.#channels.get(channel)?.users.has(user) ?? false;
  }

  /**
   * The members of `channel`, at most `limit` of them (in the order they joined), for a presence
   * reply or a handler's query. The total is `userCount(channel)`.
   */
  members(channel: string, limit = Number.POSITIVE_INFINITY): PresenceMember[] {
    const out: PresenceMember[] = [];
    const here = this.#channels.get(channel);
    if (here === undefined) return out;
    for (const [user, connections] of here.users) {
      if (out.length >= limit) break;
      out.push({ user, connections });
    }
    return out;
  }

  /** The channels `connection` is present on. */
  channelsOf(connection: C): string[] {
    return [...(this.#byConnection.get(connection)?.keys() ?? [])];
  }

  /** How many channels have at least one member. O(1). */
  get channelCount(): number {
    return this.#channels.size;
  }
}

/** Most members one presence reply lists; `total` still gives the full count. */
export const PRESENCE_REPLY_LIMIT = 1000;

/** A join or leave as the push.v1 text sent to a channel's subscribers:
 * `{"type":"join","channel":"room.1","user":"42"}`. Encoded once per change, then fanned out. */
export function presenceChangeMessage(change: PresenceChange): string {
  return JSON.stringify({ type: change.type, channel: change.channel, user: change.user });
}

/** The reply to `{"op":"presence","id":7,"channel":"room.1"}`:
 * `{"type":"presence","id":7,"channel":"room.1","total":1,"users":[{"user":"42","connections":1}]}`
 * `id` is echoed when the query had one, as in every other reply, so a client matches replies to
 * queries by it. At most `limit` members are listed; `total` counts them all. */
export function presenceMessage<C>(
  presence: Presence<C>,
  query: { readonly channel: string; readonly id?: string | number; readonly limit?: number },
): string {
  const { channel, id, limit = PRESENCE_REPLY_LIMIT } = query;
  return JSON.stringify({
    type: "presence",
    id,
    channel,
    total: presence.userCount(channel),
    users: presence.members(channel, limit),
  });
}

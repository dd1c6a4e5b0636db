// Owns the subscription index: channel → its subscribers, and connection → its channels, with a
// cap on the channels of one connection. Finding a channel's subscribers is one map lookup, and
// walking them costs their number; no other connection is looked at.
//
// Each subscription remembers the offset its replay reached (`after`). Fan-out sends a
// publication only to subscribers with `after` below its offset, so a publication that was both
// replayed and fanned out (a subscribe that ran between commit and fan-out) is sent once.

/** The default cap on the channels one connection may subscribe to. */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION = 128;

/** `after` of a subscription whose replay is still being sent: fan-out skips it. */
export const REPLAYING = Number.MAX_SAFE_INTEGER;

/** The result of a subscribe: newly added, already there, or refused by the cap. */
export type SubscribeOutcome = "added" | "already" | "limit";

const NO_CHANNELS: ReadonlySet<never> = new Set<never>();
const NO_SUBSCRIBERS: ReadonlyMap<never, number> = new Map<never, number>();

/**
 * Subscriptions of connections (any key: an id, or the connection object) to channels. A channel
 * with no subscribers and a connection with no channels take no memory.
 */
export class SubscriptionIndex<K> {
  readonly #maxPerConnection: number;
  readonly #byChannel = new Map<string, Map<K, number>>();
  readonly #byConnection = new Map<K, Set<string>>();
  #size = 0;

  constructor(options: { readonly maxPerConnection?: number } = {}) {
    this.#maxPerConnection = options.maxPerConnection ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION;
  }

  /**
   * Subscribes `conn` to `channel`, unless it already holds the cap of channels. `after` is the
   * offset up to which the connection has been (or is being) sent the channel, by replay; 0
   * when nothing was replayed.
   */
  subscribe(conn: K, channel: string, after = 0): SubscribeOutcome {
    let channels = this.#byConnection.get(conn);
    if (channels?.has(channel)) return "already";
    if ((channels?.size ?? 0) >= this.#maxPerConnection) return "limit";
    if (channels === undefined) {
      channels = new Set();
      this.#byConnection.set(conn, channels);
    }
    channels.add(channel);
    let subscribers = this.#byChannel.get(channel);
    if (subscribers === undefined) {
      subscribers = new Map();
      this.#byChannel.set(channel, subscribers);
    }
    subscribers.set(conn, after);
    this.#size++;
    return "added";
  }

  /**
   * Sets the offset a subscription's replay reached, e.g. from REPLAYING to the offset where its
   * replay caught up: fan-out sends it what comes after. False when there is no such subscription.
   */
  setAfter(conn: K, channel: string, after: number): boolean {
    const subscribers = this.#byChannel.get(channel);
    if (subscribers === undefined || !subscribers.has(conn)) return false;
    subscribers.set(conn, after);
    return true;
  }

  /** Removes one subscription; false when there was none. */
  unsubscribe(conn: K, channel: string): boolean {
    const channels = this.#byConnection.get(conn);
    if (channels === undefined || !channels.delete(channel)) return false;
    if (channels.size === 0) this.#byConnection.delete(conn);
    const subscribers = this.#byChannel.get(channel)!;
    subscribers.delete(conn);
    if (subscribers.size === 0) this.#byChannel.delete(channel);
    this.#size--;
    return true;
  }

  /** Removes every subscription of a connection (call it on close); returns its channels. */
  removeConnection(conn: K): string[] {
    const channels = this.#byConnection.get(conn);
    if (channels === undefined) return [];
    for (const channel of channels) {
      const subscribers = this.#byChannel.get(channel)!;
      subscribers.delete(conn);
      if (subscribers.size === 0) this.#byChannel.delete(channel);
    }
    this.#byConnection.delete(conn);
    this.#size -= channels.size;
    return [...channels];
  }

  /**
   * The subscribers of a channel, each with the offset its replay reached: send a publication to
   * those whose value is below its offset. A live view: do not change the index while iterating.
   */
  subscribers(channel: string): ReadonlyMap<K, number> {
    return this.#byChannel.get(channel) ?? NO_SUBSCRIBERS;
  }

  /** The channels of a connection (a live view). */
  channelsOf(conn: K): ReadonlySet<string> {
    return this.#byConnection.get(conn) ?? NO_CHANNELS;
  }

  has(conn: K, channel: string): boolean {
    return this.#byConnection.get(conn)?.has(channel) ?? false;
  }

  /** How many subscriptions there are, over all channels (O(1)). */
  get size(): number {
    return this.#size;
  }

  /** How many channels have at least one subscriber. */
  get channelCount(): number {
    return this.#byChannel.size;
  }

  /** How many connections have at least one subscription. */
  get connectionCount(): number {
    return this.#byConnection.size;
  }
}

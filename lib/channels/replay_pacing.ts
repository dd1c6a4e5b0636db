// Owns the pacing of replays: the publications a resume must replay are queued only as far as
// they fit in a share of the connection's queue, and the rest follow as the queue drains. A
// backlog larger than --max-queue, queued in one step, would close the client as a slow consumer
// (4000) at every reconnect without it ever getting anything.
//
// One ReplayPacer per connection holds its replays still running, in the order they were asked
// for. The hub pulls one step at a time (h11's `next_event()`): send this text, read what the
// channel got since this position, wait for the queue to drain, or idle. Reads and sends are the
// hub's; sizes and the queue's fill are passed in.

import type { Publication } from "./history.ts";
import { encodePublication } from "./protocol.ts";
import type { StreamPosition } from "./protocol.ts";
import { textFrameLength } from "../protocol/frame.ts";

/**
 * The share of a connection's queue limit that a replay fills at most: the rest stays free for
 * replies and for the live publications of its other channels.
 */
export const REPLAY_QUEUE_SHARE = 0.5;

/** How full a connection's outbound queue is, in bytes. */
export interface QueueFill {
  readonly queued: number;
  readonly limit: number;
}

/**
 * Whether a replayed frame of `bytes` may be queued now. Into an empty queue always, so that a
 * replay advances whatever its frames' size; otherwise while the queue stays within the replay's
 * share of the limit.
 */
export function mayQueueReplay(bytes: number, fill: QueueFill): boolean {
  return fill.queued === 0 || fill.queued + bytes <= fill.limit * REPLAY_QUEUE_SHARE;
}

/** The next thing to do for a connection's replays. */
export type ReplayStep =
  /** Queue `text`, the publication at `offset` of `channel`. */
  | {
    readonly kind: "send";
    readonly channel: string;
    readonly offset: number;
    readonly text: string;
  }
  /**
   * Everything read for `channel` is sent: read what it got after `since` and pass it to
   * `extend` (nothing: the replay has caught up, and the subscription may go live at
   * `since.offset`).
   */
  | { readonly kind: "read"; readonly channel: string; readonly since: StreamPosition }
  /** The queue holds its share: ask again once it has drained. */
  | { readonly kind: "wait" }
  /** No replay is running. */
  | { readonly kind: "idle" };

const WAIT: ReplayStep = { kind: "wait" };
const IDLE: ReplayStep = { kind: "idle" };

/** One channel's replay: what was read for it, how far it was sent. */
interface RunningReplay {
  readonly channel: string;
  readonly epoch: string;
  pubs: readonly Publication[];
  next: number;
  /** The offset of the last publication sent (or the client's position before the first). */
  reached: number;
}

/** The replays of one connection still running, first asked first served. */
export class ReplayPacer {
  #running: RunningReplay[] = [];

  /** Whether no replay is running. */
  get idle(): boolean {
    return this.#running.length === 0;
  }

  /** Whether the replay of `channel` is still running. */
  has(channel: string): boolean {
    return this.#running.some((r) => r.channel === channel);
  }

  /**
   * Starts the replay of `channel` from `since` (the client's position): `pubs` are the offsets
   * after it, in order, as far as history reaches now. Throws if one is running already.
   */
  add(channel: string, replay: { since: StreamPosition; pubs: readonly Publication[] }): void {
    if (this.has(channel)) throw new Error(`Cannot replay ${channel}: its replay is running`);
    const { since, pubs } = replay;
    this.#running.push({ channel, epoch: since.epoch, pubs, next: 0, reached: since.offset });
  }

  /** Stops the replay of `channel` (it was unsubscribed); false when none was running. */
  cancel(channel: string): boolean {
    const at = this.#running.findIndex((r) => r.channel === channel);
    if (at < 0) return false;
    this.#running.splice(at, 1);
    return true;
  }

  /** The next step, given how full the connection's queue is now. */
  next(fill: QueueFill): ReplayStep {
    const head = this.#running[0];
    if (head === undefined) return IDLE;
    if (head.next === head.pubs.length) {
      return {
        kind: "read",
        channel: head.channel,
        since: { epoch: head.epoch, offset: head.reached },
      };
    }
    const pub = head.pubs[head.next];
    const text = encodePublication(pub);
    if (!mayQueueReplay(textFrameLength(text), fill)) return WAIT;
    head.next++;
    head.reached = pub.offset;
    return { kind: "send", channel: head.channel, offset: pub.offset, text };
  }

  /**
   * Answers a "read" step of `channel` with what it got since: the offsets right after the
   * position the step named, in order. Returns true when there were none: the replay has caught
   * up and is over.
   */
  extend(channel: string, pubs: readonly Publication[]): boolean {
    const head = this.#running[0];
    if (head?.channel !== channel || head.next !== head.pubs.length) {
      throw new Error(`Cannot extend the replay of ${channel}: no read was asked for it`);
    }
    if (pubs.length === 0) {
      this.#running.shift();
      return true;
    }
    if (pubs[0].offset !== head.reached + 1) {
      throw new Error(`Cannot extend the replay of ${channel}: offset ${head.reached + 1} missing`);
    }
    head.pubs = pubs;
    head.next = 0;
    return false;
  }
}

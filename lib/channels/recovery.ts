// Owns the recovery decision: given where a client left a channel ({epoch, offset}) and where
// the channel stands, either replay the missed range (exact resume) or answer recovered:false
// with the current position. Also the check that a replay read really covers its range.

import type { ChannelView, Publication } from "./history.ts";
import type { StreamPosition } from "./protocol.ts";

/** What to do for one channel of a subscribe. Every kind carries the channel's position now. */
export type RecoveryDecision =
  /** The client asked for no position: start live from here. */
  | { readonly kind: "fresh"; readonly epoch: string; readonly offset: number }
  /** Replay offsets [from, to] (empty when from > to), then go live: recovered:true. */
  | {
    readonly kind: "replay";
    readonly epoch: string;
    readonly offset: number;
    readonly from: number;
    readonly to: number;
  }
  /** History does not cover the gap (other epoch, too old, or ahead of us): recovered:false. */
  | { readonly kind: "lost"; readonly epoch: string; readonly offset: number };

/**
 * Decides how to answer a subscribe from `since` (null: the client has no position).
 * Same epoch, `since.offset` ≤ top and `since.offset + 1` ≥ floor: replay `since.offset + 1`
 * through top. Anything else with a position is lost: a different epoch means the history the
 * offset refers to is gone; an offset above top cannot come from this epoch's history.
 */
export function decideRecovery(since: StreamPosition | null, view: ChannelView): RecoveryDecision {
  const position = { epoch: view.epoch, offset: view.top };
  if (since === null) return { kind: "fresh", ...position };
  if (since.epoch !== view.epoch || since.offset > view.top || since.offset + 1 < view.floor) {
    return { kind: "lost", ...position };
  }
  return { kind: "replay", ...position, from: since.offset + 1, to: view.top };
}

/** Whether `pubs` are exactly the offsets from..to in order (a replay read found no hole). */
export function coversRange(
  pubs: readonly Pick<Publication, "offset">[],
  range: { readonly from: number; readonly to: number },
): boolean {
  if (pubs.length !== Math.max(0, range.to - range.from + 1)) return false;
  for (let i = 0; i < pubs.length; i++) {
    if (pubs[i].offset !== range.from + i) return false;
  }
  return true;
}

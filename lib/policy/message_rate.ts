// Owns the inbound message rate of one connection (--message-rate, --message-burst): which
// messages are within it, and the close a connection gets past it.

import { PushCloseCode } from "../protocol/close_codes.ts";
import { type RateLimit, TokenBucket } from "./token_bucket.ts";

/**
 * The close sent to a client past its message rate: 4001 (push-server's RATE_LIMITED), so that
 * a client backs off before it reconnects. The reason is the documented text in the README.
 */
export const RATE_LIMITED_CLOSE = {
  code: PushCloseCode.RATE_LIMITED,
  reason: "message rate exceeded",
} as const;

/** What the connection should do with one inbound message. */
export type MessageVerdict = "accept" | "close";

/**
 * One connection's inbound message budget. With no limit configured, use `null` instead of an
 * instance (see `messageRateFor`), so that unlimited connections pay nothing per message.
 */
export class MessageRate {
  readonly #bucket: TokenBucket;

  constructor(limit: RateLimit, now: number) {
    this.#bucket = new TokenBucket(limit, now);
  }

  /** Counts one inbound data message (text or binary) at `now`. */
  message(now: number): MessageVerdict {
    return this.#bucket.take(now) ? "accept" : "close";
  }
}

/** A MessageRate for a new connection, or null when --message-rate is off. */
export function messageRateFor(
  settings: { readonly messageRate?: number; readonly messageBurst?: number },
  now: number,
): MessageRate | null {
  const rate = settings.messageRate;
  if (rate === undefined || rate <= 0) return null;
  return new MessageRate({ perSecond: rate, burst: settings.messageBurst ?? rate }, now);
}

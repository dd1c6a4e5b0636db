// Owns the token bucket: a rate with a burst allowance, refilled from the time the caller passes
// in (milliseconds, any monotonic origin). Used for the inbound message rate of one connection
// and for the handshake rate of one IP address.

const MS_PER_SECOND = 1000;

/** A rate in events per second, and how many may come at once after a quiet spell. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

/** Tokens refill at `perSecond`, up to `burst`; each event takes one. Starts full. */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  constructor(limit: RateLimit, now: number) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
      throw new RangeError(
        `Cannot create token bucket: rate ${limit.perSecond}/s and burst ${limit.burst} must be positive`,
      );
    }
    this.#perMs = limit.perSecond / MS_PER_SECOND;
    this.#burst = limit.burst;
    this.#tokens = limit.burst;
    this.#at = now;
  }

  /** Takes one token if there is one: true if the event is within the rate. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whether the bucket is full at `now`: an idle bucket that can be forgotten. */
  isFull(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.#burst;
  }

  #refill(now: number): void {
    // A clock that steps back refills nothing rather than draining the bucket.
    const elapsed = now - this.#at;
    if (elapsed <= 0) return;
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#perMs);
    this.#at = now;
  }
}

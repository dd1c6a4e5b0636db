// Owns the deadlines of one connection: the opening handshake, the idle ping and its pong, the
// closing handshake, and a queue that stops draining. Pure: the caller passes `now` (ms) in and
// acts on the answer; traffic is noted without reading a clock.

export interface LivenessOptions {
  /** Time allowed from accept to a completed opening handshake. */
  readonly handshakeTimeout: number;
  /** Silence from the peer after which it is pinged. */
  readonly pingInterval: number;
  /** Time a ping may go unanswered (by any traffic) before the peer is dropped. */
  readonly pongTimeout: number;
  /** Time allowed for the closing handshake (and the peer's FIN) once closing starts. */
  readonly closeTimeout: number;
  /** Time a non-empty outbound queue may go without any write completing (slow consumer). */
  readonly drainTimeout: number;
}

/** What the connection should do now. */
export type LivenessAction =
  | "none"
  | "ping"
  | "handshake-timeout"
  | "pong-timeout"
  | "close-timeout"
  | "slow-consumer";

/** The deadlines of one connection, checked by `tick(now)`. */
export class Liveness {
  readonly #o: LivenessOptions;
  #phase: "handshake" | "open" | "closing" = "handshake";
  #deadline: number;
  #lastHeard: number;
  #heard = false;
  #pingSentAt = 0;
  #wrote = false;
  #stalledSince = 0;

  constructor(options: LivenessOptions, now: number) {
    this.#o = options;
    this.#deadline = now + options.handshakeTimeout;
    this.#lastHeard = now;
  }

  /** The handshake is done: the ping schedule starts. */
  opened(now: number): void {
    if (this.#phase !== "handshake") return;
    this.#phase = "open";
    this.#deadline = 0;
    this.#lastHeard = now;
  }

  /** Closing started (either side): the close deadline starts, once. */
  closing(now: number, timeout = this.#o.closeTimeout): void {
    if (this.#phase === "closing") return;
    this.#phase = "closing";
    this.#deadline = now + timeout;
  }

  /** Bytes arrived from the peer. No clock: `tick` stamps it. */
  heard(): void {
    this.#heard = true;
  }

  /** A write completed. No clock: `tick` stamps it. */
  wrote(): void {
    this.#wrote = true;
  }

  /** Checks every deadline at `now`; `queued` says whether output waits to be written. */
  tick(now: number, queued: boolean): LivenessAction {
    if (this.#heard) {
      this.#heard = false;
      this.#lastHeard = now;
      this.#pingSentAt = 0;
    }
    if (this.#deadline !== 0 && now >= this.#deadline) {
      return this.#phase === "handshake" ? "handshake-timeout" : "close-timeout";
    }
    if (this.#phase !== "open") return "none";
    if (this.#stalled(now, queued)) return "slow-consumer";
    if (this.#pingSentAt !== 0) {
      return now - this.#pingSentAt >= this.#o.pongTimeout ? "pong-timeout" : "none";
    }
    if (now - this.#lastHeard >= this.#o.pingInterval) {
      this.#pingSentAt = now;
      return "ping";
    }
    return "none";
  }

  /**
   * For how long, as of the last tick, output has waited with no write completing (0 when it
   * has not): how the fan-out tells a client that stopped reading.
   */
  stalledFor(now: number): number {
    return this.#stalledSince === 0 ? 0 : now - this.#stalledSince;
  }

  #stalled(now: number, queued: boolean): boolean {
    const wrote = this.#wrote;
    this.#wrote = false;
    if (!queued) {
      this.#stalledSince = 0;
      return false;
    }
    if (wrote || this.#stalledSince === 0) {
      this.#stalledSince = now;
      return false;
    }
    return now - this.#stalledSince >= this.#o.drainTimeout;
  }
}

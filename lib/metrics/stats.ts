// Owns the plain counters the server bumps on its hot paths: numbers and small maps, no labels
// looked up and no library calls. lib/metrics/metrics.ts reads them when /metrics is scraped.

import { HANDLER_NAMES } from "../api/handlers.ts";

/** Upper bounds (seconds) of handler-duration buckets: 50 µs to 5 s. */
export const HANDLER_BUCKETS_SECONDS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** Upper bounds (seconds) of event-loop lag buckets: 1 ms to 2.5 s. */
export const LAG_BUCKETS_SECONDS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

/** A histogram kept as plain numbers: `observe` is a short scan and two additions. */
export class PlainHistogram {
  readonly bounds: readonly number[];
  /** Non-cumulative count per bucket; the last entry is above the largest bound (+Inf). */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/** Counts per key, for events that are rare or batched (handshakes, closes, failures, drops). */
export class Tally<K extends string | number> {
  readonly #counts = new Map<K, number>();

  add(key: K, n = 1): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + n);
  }

  get(key: K): number {
    return this.#counts.get(key) ?? 0;
  }

  entries(): IterableIterator<[K, number]> {
    return this.#counts.entries();
  }
}

/** The handler events counted by push_handler_* (the `event` label): every handler name. */
export const HANDLER_EVENTS = HANDLER_NAMES;
export type HandlerEvent = (typeof HANDLER_EVENTS)[number];

/** One handler event's counters; take it once (`stats.handlers.text`) and keep the reference. */
export class HandlerStats {
  calls = 0;
  errors = 0;
  readonly duration = new PlainHistogram(HANDLER_BUCKETS_SECONDS);

  /** Records one finished call (an async one once it settled) and whether it threw or rejected. */
  record(seconds: number, failed: boolean): void {
    this.calls++;
    if (failed) this.errors++;
    this.duration.observe(seconds);
  }
}

/** The `limit` label of push_limit_rejections_total. */
export type LimitName =
  | "max_connections"
  | "per_ip_connections"
  | "per_ip_handshake_rate"
  | "message_rate";

/**
 * Every counter the server increments. Fields are plain numbers: `stats.messagesIn++` is the
 * whole cost on the hot path. Keyed tallies are for events that happen per handshake, per
 * close or per FIFO read, never per message.
 */
export class PushStats {
  /** TCP connections accepted on the public port. */
  connectionsAccepted = 0;
  /** Data messages (text or binary) received from clients. */
  messagesIn = 0;
  /** Bytes read from client sockets (add each read's length: one addition per read). */
  bytesIn = 0;
  /** Data messages queued for clients (one per client per message). */
  messagesOut = 0;
  /** Bytes written to client sockets (add each write's result). */
  bytesOut = 0;
  /**
   * Messages run through deflate for permessage-deflate clients: once per message sent to one
   * client, and once per broadcast message whatever its fan-out (once per window size in use).
   */
  compressions = 0;
  fifoLinesRead = 0;
  /** Reads from the FIFO that delivered at least one line. */
  fifoBatches = 0;
  slowConsumerCloses = 0;
  /** Messages published to channels (once channels exist). */
  publications = 0;
  resumesRecovered = 0;
  resumesNotRecovered = 0;
  /** Opening handshakes by the HTTP status answered: 101, or the refusal's status. */
  readonly handshakes = new Tally<number>();
  /** Close codes of ended connections (sent or received); see `closeCodeLabel`. */
  readonly closes = new Tally<number>();
  /** Protocol failures by the codec's failure kind. */
  readonly protocolFailures = new Tally<string>();
  /** FIFO lines dropped, by reason (e.g. too_long, invalid_utf8). */
  readonly fifoDropped = new Tally<string>();
  readonly limitRejections = new Tally<LimitName>();
  readonly handlers: Readonly<Record<HandlerEvent, HandlerStats>> = handlerStats();
  readonly eventLoopLag = new PlainHistogram(LAG_BUCKETS_SECONDS);
}

function handlerStats(): Record<HandlerEvent, HandlerStats> {
  const out = {} as Record<HandlerEvent, HandlerStats>;
  for (const event of HANDLER_EVENTS) out[event] = new HandlerStats();
  return out;
}

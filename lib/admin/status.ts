// Owns the data behind the status page: a bounded history of counter samples taken every few
// seconds, and the snapshot served as /status.json. Times are passed in.

import type { PushMetrics } from "../metrics/metrics.ts";

/** Samples kept: at the default interval, the last ten minutes. */
export const HISTORY_SAMPLES = 120;
export const SAMPLE_INTERVAL_MS = 5000;
/** Rows shown in the slow-consumer and busiest-channel tables. */
export const TABLE_ROWS = 10;

/** One client with bytes waiting, as listed under "slow consumers". */
export interface QueuedClient {
  readonly id: string | number;
  readonly remote: string;
  readonly queuedBytes: number;
}

export interface ChannelActivity {
  readonly name: string;
  readonly subscribers: number;
  readonly publications: number;
}

/** What the page shows beyond the metrics; each is optional and called once per poll. */
export interface StatusSources {
  /** Up to `limit` clients with the most bytes queued, most first. */
  mostQueued?(limit: number): readonly QueuedClient[];
  /** Up to `limit` channels with the most publications, most first. */
  busiestChannels?(limit: number): readonly ChannelActivity[];
  /** The FIFO's path and whether it is open for reading now. */
  fifo?(): { readonly path: string; readonly open: boolean };
}

/** Counters at one moment; the page turns successive samples into rates. */
export interface Sample {
  /** Milliseconds since the epoch. */
  readonly t: number;
  readonly connectionsOpen: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly bytesOut: number;
}

/** A ring of the last HISTORY_SAMPLES samples. */
export class StatusHistory {
  readonly #ring: Sample[] = [];
  #next = 0;
  readonly #capacity: number;

  constructor(capacity = HISTORY_SAMPLES) {
    this.#capacity = capacity;
  }

  record(sample: Sample): void {
    if (this.#ring.length < this.#capacity) this.#ring.push(sample);
    else this.#ring[this.#next] = sample;
    this.#next = (this.#next + 1) % this.#capacity;
  }

  /** Oldest first. */
  samples(): Sample[] {
    if (this.#ring.length < this.#capacity) return [...this.#ring];
    return [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
  }
}

/** The counters now, from the same stats and sources /metrics reads. */
export function takeSample(metrics: PushMetrics, now: number): Sample {
  const s = metrics.stats;
  return {
    t: now,
    connectionsOpen: metrics.sources.connectionsOpen(),
    messagesIn: s.messagesIn,
    messagesOut: s.messagesOut,
    bytesOut: s.bytesOut,
  };
}

/** The body of /status.json. Field names follow the metrics the page's numbers come from. */
export interface StatusSnapshot {
  readonly now: number;
  readonly startedAt: number;
  readonly metrics: Readonly<Record<string, number>>;
  readonly slowConsumers: readonly QueuedClient[];
  readonly busiestChannels: readonly ChannelActivity[];
  readonly fifo: {
    readonly path: string | null;
    readonly open: boolean;
    readonly dropped: Readonly<Record<string, number>>;
  };
  readonly problems: readonly string[];
  /** What /readyz lists as warnings: worth knowing, but the server is ready. */
  readonly warnings: readonly string[];
  readonly history: readonly Sample[];
}

export function statusSnapshot(
  metrics: PushMetrics,
  { now, startedAt, sources, history, problems, warnings = [] }: {
    now: number;
    startedAt: number;
    sources: StatusSources;
    history: StatusHistory;
    problems: readonly string[];
    warnings?: readonly string[];
  },
): StatusSnapshot {
  const s = metrics.stats;
  const fifo = sources.fifo?.() ?? null;
  const fifoOpen = fifo?.open ?? metrics.sources.fifoOpen?.() ?? false;
  return {
    now,
    startedAt,
    // Keys are the metric names, so that the page and the tests can match them to /metrics.
    metrics: {
      push_connections_open: metrics.sources.connectionsOpen(),
      push_connections_accepted_total: s.connectionsAccepted,
      push_messages_received_total: s.messagesIn,
      push_messages_sent_total: s.messagesOut,
      push_sent_bytes_total: s.bytesOut,
      push_queued_bytes: metrics.sources.bytesQueued(),
      push_slow_consumer_closes_total: s.slowConsumerCloses,
      push_fifo_lines_read_total: s.fifoLinesRead,
      push_fifo_batches_total: s.fifoBatches,
      push_fifo_open: fifoOpen ? 1 : 0,
      push_channels: metrics.sources.channels?.() ?? 0,
      push_subscriptions: metrics.sources.subscriptions?.() ?? 0,
    },
    slowConsumers: sources.mostQueued?.(TABLE_ROWS) ?? [],
    busiestChannels: sources.busiestChannels?.(TABLE_ROWS) ?? [],
    fifo: {
      path: fifo?.path ?? null,
      open: fifoOpen,
      dropped: Object.fromEntries(s.fifoDropped.entries()),
    },
    problems,
    warnings,
    history: [...history.samples(), takeSample(metrics, now)],
  };
}

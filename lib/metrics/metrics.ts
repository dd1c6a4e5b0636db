// Owns the Prometheus registry: every push_* metric, read at scrape time from PushStats and
// from gauge callbacks, plus prom-client's process metrics. Nothing here runs per message.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MetricObjectWithValues, MetricType, MetricValueWithName } from "prom-client";
import { CloseCode, PushCloseCode } from "../protocol/close_codes.ts";
import { HANDLER_EVENTS, type PlainHistogram, type PushStats } from "./stats.ts";

/** Values the registry samples at scrape time; each is a cheap read of server state. */
export interface MetricsSources {
  /** Open WebSocket connections (after the 101, before the close). */
  connectionsOpen(): number;
  /** Bytes waiting in all clients' outbound queues. */
  bytesQueued(): number;
  /** 1 while the FIFO is open for reading, 0 while it waits for a writer or is missing. */
  fifoOpen?(): boolean;
  channels?(): number;
  subscriptions?(): number;
  /** Publications held in memory for resume, and their estimated bytes. */
  historyMessages?(): number;
  historyBytes?(): number;
  /** Whether history is written to disk (false: kept in memory only). */
  historyDurable?(): boolean;
  /** Whether Redis answers; leave undefined when Redis is not configured. */
  redisUp?(): boolean;
}

/**
 * prom-client default metrics that are left out: under Deno 2.9.6 perf_hooks'
 * monitorEventLoopDelay misses stalls (it reported a 2 ms maximum across a 200 ms block), so
 * push_event_loop_lag_seconds replaces nodejs_eventloop_lag_*; and the nodejs_active_*_total
 * gauges break the naming rule promtool checks (`_total` is for counters).
 */
const DROPPED_DEFAULTS = [
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_min_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_eventloop_lag_mean_seconds",
  "nodejs_eventloop_lag_stddev_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p90_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_active_resources_total",
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
];

/**
 * prom-client reads these from /proc/self, which Deno 2.9.6 opens only under --allow-all
 * ("NotCapable: Requires all access"); without it they would all read 0. They are dropped
 * then, and process_resident_memory_bytes comes from Deno.memoryUsage() instead.
 */
const PROC_DEFAULTS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

/** Whether this process may read /proc/self (Linux, with --allow-all under Deno). */
function canReadProc(): boolean {
  try {
    Deno.readDirSync("/proc/self/fd");
    return true;
  } catch {
    return false;
  }
}

/** Close codes that get their own `code` label value; any other is counted as "other". */
const LABELLED_CLOSE_CODES: ReadonlySet<number> = new Set<number>([
  ...Object.values(CloseCode),
  ...Object.values(PushCloseCode),
]);

/** The `code` label for a close code: the code itself if the server knows it, else "other". */
export function closeCodeLabel(code: number): string {
  return LABELLED_CLOSE_CODES.has(code) ? String(code) : "other";
}

/** The registry and what feeds it. */
export interface PushMetrics {
  readonly registry: Registry;
  readonly stats: PushStats;
  readonly sources: MetricsSources;
  /** The text exposition format (version 0.0.4), as served on /metrics. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

/** Builds the registry over `stats` and `sources`. `processMetrics: false` leaves out process_*. */
export function createMetrics(
  stats: PushStats,
  { sources, processMetrics = true }: { sources: MetricsSources; processMetrics?: boolean },
): PushMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (processMetrics) {
    collectDefaultMetrics({ register: registry });
    for (const name of DROPPED_DEFAULTS) registry.removeSingleMetric(name);
    if (!canReadProc()) {
      for (const name of PROC_DEFAULTS) registry.removeSingleMetric(name);
      new Gauge({
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes.",
        registers,
        collect() {
          this.set(Deno.memoryUsage().rss);
        },
      });
    }
  }

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  const tally = <K extends string | number>(
    name: string,
    { help, label, entries, seed = [] }: {
      help: string;
      label: string;
      entries: () => Iterable<[K, number]>;
      seed?: readonly string[];
    },
  ) =>
    new Counter({
      name,
      help,
      labelNames: [label],
      registers,
      collect() {
        this.reset();
        for (const value of seed) this.inc({ [label]: value }, 0);
        for (const [key, n] of entries()) this.inc({ [label]: String(key) }, n);
      },
    });

  gauge("push_connections_open", "WebSocket connections open now.", sources.connectionsOpen);
  counter(
    "push_connections_accepted_total",
    "TCP connections accepted on the public port.",
    () => stats.connectionsAccepted,
  );
  tally("push_handshakes_total", {
    help: "Opening handshakes by the HTTP status answered (101 or the refusal's status).",
    label: "status",
    entries: () => stats.handshakes.entries(),
  });
  counter(
    "push_messages_received_total",
    "Data messages received from clients.",
    () => stats.messagesIn,
  );
  counter(
    "push_received_bytes_total",
    "Bytes read from client sockets.",
    () => stats.bytesIn,
  );
  counter(
    "push_messages_sent_total",
    "Data messages queued for clients, one per client per message.",
    () => stats.messagesOut,
  );
  counter("push_sent_bytes_total", "Bytes written to client sockets.", () => stats.bytesOut);
  counter(
    "push_compressed_messages_total",
    "Messages run through deflate (permessage-deflate); a broadcast counts once, not per client.",
    () => stats.compressions,
  );
  gauge("push_queued_bytes", "Bytes waiting in client outbound queues.", sources.bytesQueued);
  counter("push_fifo_lines_read_total", "Lines read from the FIFO.", () => stats.fifoLinesRead);
  tally("push_fifo_lines_dropped_total", {
    help: "FIFO lines dropped, by reason.",
    label: "reason",
    entries: () => stats.fifoDropped.entries(),
  });
  counter(
    "push_fifo_batches_total",
    "FIFO reads that delivered at least one line.",
    () => stats.fifoBatches,
  );
  gauge(
    "push_fifo_open",
    "1 while the FIFO is open for reading, 0 while it waits for a writer.",
    () => sources.fifoOpen?.() ? 1 : 0,
  );
  counter(
    "push_slow_consumer_closes_total",
    "Clients closed because their outbound queue overflowed.",
    () => stats.slowConsumerCloses,
  );
  tally("push_closes_total", {
    help: "Ended connections by close code (codes the server does not know count as other).",
    label: "code",
    entries: () => closeEntries(stats),
  });
  tally("push_protocol_failures_total", {
    help: "Connections failed for breaking the WebSocket protocol, by failure kind.",
    label: "kind",
    entries: () => stats.protocolFailures.entries(),
  });
  tally("push_limit_rejections_total", {
    help: "Handshakes refused or connections closed by a configured limit.",
    label: "limit",
    entries: () => stats.limitRejections.entries(),
  });
  tally("push_handler_calls_total", {
    help: "Handler calls by event.",
    label: "event",
    entries: () => HANDLER_EVENTS.map((e) => [e, stats.handlers[e].calls]),
  });
  tally("push_handler_errors_total", {
    help: "Handler calls that threw or rejected, by event.",
    label: "event",
    entries: () => HANDLER_EVENTS.map((e) => [e, stats.handlers[e].errors]),
  });
  new PlainHistogramMetric({
    name: "push_handler_duration_seconds",
    help: "Time handlers took, by event (until async ones settle); text, binary, ping: 1 in 16.",
    registers,
    label: "event",
    series: () => HANDLER_EVENTS.map((e) => [e, stats.handlers[e].duration]),
  });
  new PlainHistogramMetric({
    name: "push_event_loop_lag_seconds",
    help: "How late a periodic timer fired: time the event loop was busy.",
    registers,
    series: () => [["", stats.eventLoopLag]],
  });
  gauge("push_channels", "Channels with at least one subscriber.", () => sources.channels?.() ?? 0);
  gauge(
    "push_subscriptions",
    "Channel subscriptions over all connections.",
    () => sources.subscriptions?.() ?? 0,
  );
  counter(
    "push_publications_total",
    "Messages published to channels.",
    () => stats.publications,
  );
  gauge(
    "push_history_messages",
    "Publications held in memory for resume (the store on disk may hold older ones).",
    () => sources.historyMessages?.() ?? 0,
  );
  gauge(
    "push_history_bytes",
    "Estimated bytes of the publications held in memory for resume.",
    () => sources.historyBytes?.() ?? 0,
  );
  gauge(
    "push_history_durable",
    "1 while history is written to disk, 0 while it is kept in memory only.",
    () => sources.historyDurable?.() ? 1 : 0,
  );
  tally("push_resumes_total", {
    help: "Resumes after a reconnect, by whether every missed message was recovered.",
    label: "recovered",
    entries: () => [["true", stats.resumesRecovered], ["false", stats.resumesNotRecovered]],
  });
  const redisUp = sources.redisUp;
  if (redisUp) gauge("push_redis_up", "1 while Redis answers, else 0.", () => redisUp() ? 1 : 0);

  return {
    registry,
    stats,
    sources,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
  };
}

function* closeEntries(stats: PushStats): Iterable<[string, number]> {
  const merged = new Map<string, number>();
  for (const [code, n] of stats.closes.entries()) {
    const label = closeCodeLabel(code);
    merged.set(label, (merged.get(label) ?? 0) + n);
  }
  yield* merged;
}

type Series = readonly (readonly [string, PlainHistogram])[];

/**
 * A histogram whose buckets live in PlainHistogram objects the server updates directly:
 * prom-client's own Histogram hashes its labels on every observe, even through `labels()`.
 * This subclass only replaces how values are read at scrape time.
 */
class PlainHistogramMetric extends Histogram<string> {
  readonly #name: string;
  readonly #help: string;
  readonly #series: () => Series;
  readonly #label: string | undefined;

  constructor(
    config: {
      name: string;
      help: string;
      registers: Registry[];
      label?: string;
      series: () => Series;
    },
  ) {
    super({
      name: config.name,
      help: config.help,
      registers: config.registers,
      labelNames: config.label ? [config.label] : [],
    });
    this.#name = config.name;
    this.#help = config.help;
    this.#series = config.series;
    this.#label = config.label;
  }

  override get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return Promise.resolve(this.#snapshot());
  }

  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return Promise.resolve(this.#snapshot());
  }

  #snapshot(): MetricObjectWithValues<MetricValueWithName<string>> {
    const values: MetricValueWithName<string>[] = [];
    for (const [labelValue, h] of this.#series()) {
      const base: Record<string, string> = this.#label ? { [this.#label]: labelValue } : {};
      let cumulative = 0;
      for (let i = 0; i <= h.bounds.length; i++) {
        cumulative += h.counts[i];
        const le = i < h.bounds.length ? String(h.bounds[i]) : "+Inf";
        values.push({
          metricName: `${this.#name}_bucket`,
          labels: { ...base, le },
          value: cumulative,
        });
      }
      values.push({ metricName: `${this.#name}_sum`, labels: base, value: h.sum });
      values.push({ metricName: `${this.#name}_count`, labels: base, value: h.count });
    }
    // prom-client declares MetricType as an enum but does not export it at run time.
    const type = "histogram" as unknown as MetricType;
    return {
      name: this.#name,
      help: this.#help,
      type,
      values,
      aggregator: "sum",
      collect: () => {},
    };
  }
}

// Owns the one object the server holds for operability: the counters (PushStats), the metrics
// registry, connection admission and message-rate limits (with their refusals counted and
// logged at most once per interval), the event-loop lag sampler and the admin listener.

import type { Logger } from "../api/handlers.ts";
import type { Options } from "../api/options.ts";
import { startEventLoopMonitor } from "../metrics/event_loop.ts";
import type { MetricsSources, PushMetrics } from "../metrics/metrics.ts";
import { type LimitName, PushStats } from "../metrics/stats.ts";
import { type Admission, ConnectionLimits } from "../policy/connection_limits.ts";
import { type MessageRate, messageRateFor, RATE_LIMITED_CLOSE } from "../policy/message_rate.ts";
import type { AdminServer, ReadinessCheck, ReadinessWarnings } from "./admin_server.ts";
import type { StatusSources } from "./status.ts";

/** At most one log line per limit per this many milliseconds; the rest are summed into it. */
export const LIMIT_LOG_INTERVAL_MS = 10_000;

export { RATE_LIMITED_CLOSE };

/** What the server lends for scraping, readiness and the status page. */
export interface OperabilityHooks {
  readonly log: Logger;
  /** The counters the server increments; a fresh set when not given. */
  readonly stats?: PushStats;
  readonly sources: MetricsSources;
  readonly readiness: ReadinessCheck;
  readonly warnings?: ReadinessWarnings;
  readonly status?: StatusSources;
}

/** Logs one line per limit per interval, saying how many refusals it stands for. */
export class LimitLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #last = new Map<LimitName, { at: number; suppressed: number }>();

  constructor(log: Logger, intervalMs = LIMIT_LOG_INTERVAL_MS) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  hit(limit: LimitName, { now, detail }: { now: number; detail: string }): void {
    const last = this.#last.get(limit);
    if (last && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return;
    }
    const more = last && last.suppressed > 0
      ? ` (and ${last.suppressed} more since the last line)`
      : "";
    this.#log.warn(`limit ${limit}: ${detail}${more}`, { event: "limit", limit });
    this.#last.set(limit, { at: now, suppressed: 0 });
  }
}

export class Operability {
  readonly stats: PushStats;
  /** The registry, built only with --admin-listen (prom-client is loaded only then). */
  readonly metrics: PushMetrics | null;
  readonly limits: ConnectionLimits;
  /** The admin listener, or null when --admin-listen is not set. */
  readonly admin: AdminServer | null;
  readonly #options: Options;
  readonly #limitLog: LimitLog;
  readonly #stopLag: () => void;

  private constructor(
    options: Options,
    parts: {
      stats: PushStats;
      metrics: PushMetrics | null;
      admin: AdminServer | null;
      limitLog: LimitLog;
      stopLag: () => void;
    },
  ) {
    this.#options = options;
    this.stats = parts.stats;
    this.metrics = parts.metrics;
    this.admin = parts.admin;
    this.#limitLog = parts.limitLog;
    this.#stopLag = parts.stopLag;
    this.limits = new ConnectionLimits(options);
  }

  /**
   * Builds the registry and starts the lag sampler and (with --admin-listen) the admin
   * listener. Returns a one-line error when the admin address cannot be bound.
   */
  static async start(
    options: Options,
    hooks: OperabilityHooks,
  ): Promise<Operability | { error: string }> {
    const stats = hooks.stats ?? new PushStats();
    let metrics: PushMetrics | null = null;
    let admin: AdminServer | null = null;
    if (options.adminListen !== undefined) {
      // Loaded only when asked for: a server without --admin-listen needs no npm package.
      const { createMetrics } = await import("../metrics/metrics.ts");
      const { startAdminServer } = await import("./admin_server.ts");
      metrics = createMetrics(stats, { sources: hooks.sources });
      const started = startAdminServer({
        listen: options.adminListen,
        metrics,
        readiness: hooks.readiness,
        warnings: hooks.warnings,
        status: hooks.status,
        log: hooks.log,
        title: `${options.host}:${options.port}`,
      });
      if ("error" in started) return started;
      admin = started;
    }
    const stopLag = startEventLoopMonitor(stats.eventLoopLag);
    return new Operability(options, {
      stats,
      metrics,
      admin,
      limitLog: new LimitLog(hooks.log),
      stopLag,
    });
  }

  /**
   * Decides on a handshake from `address` (after --trusted-proxy) at `now` (ms). On a refusal,
   * answer `status` with `body`; the refusal is already counted and logged. On ok, call
   * `release(address)` exactly once when the connection ends or is refused later.
   */
  admit(address: string, now: number): Admission {
    const admission = this.limits.admit(address, now);
    if (!admission.ok) {
      this.stats.limitRejections.add(admission.reason);
      this.#limitLog.hit(admission.reason, {
        now,
        detail: `${admission.body} (HTTP ${admission.status})`,
      });
    }
    return admission;
  }

  release(address: string): void {
    this.limits.release(address);
  }

  /** A message-rate budget for a new connection, or null when --message-rate is off. */
  messageRate(now: number): MessageRate | null {
    return messageRateFor(this.#options, now);
  }

  /** Counts and logs a connection closed for its message rate; the caller sends the close. */
  rateLimited(conn: { id: string | number; remote: string }, now: number): void {
    this.stats.limitRejections.add("message_rate");
    this.#limitLog.hit("message_rate", {
      now,
      detail:
        `connection ${conn.id} from ${conn.remote} sent over ${this.#options.messageRate}/s; ` +
        `closed with ${RATE_LIMITED_CLOSE.code} ${RATE_LIMITED_CLOSE.reason}`,
    });
  }

  /** Forgets idle per-address entries; call from the housekeeping timer. */
  sweep(now: number): void {
    this.limits.sweep(now);
  }

  async close(): Promise<void> {
    this.#stopLag();
    await this.admin?.close();
  }
}

// Owns calling the application's handlers: one path for every event, errors logged with the
// handler's name, connection and source location (never rethrown), and the `upgrade` handler's
// time limit. A handler that is not exported costs nothing.

import type {
  Connection,
  Handlers,
  Logger,
  Server,
  UpgradeRequest,
  UpgradeResult,
} from "../api/handlers.ts";
import { describeError } from "../api/log.ts";
import { refuse, type UpgradeDecision } from "../policy/upgrade_policy.ts";
import type { CodecEvent } from "../protocol/codec.ts";
import type { HandlerEvent, PushStats } from "../metrics/stats.ts";

/** With metrics on, the duration of one message handler call in this many is measured. */
const SAMPLE_EVERY = 16;

/** Which handler runs, and for which connection: named in the log line if it fails. */
export interface HandlerSite {
  readonly event: HandlerEvent;
  readonly conn?: number;
}

/** The client messages a handler may receive. */
type MessageEvent = Extract<CodecEvent, { type: "text" | "binary" | "ping" }>;
type MessageHandler = (conn: Connection, data: unknown, server: Server) => unknown;

/** Runs handlers for the server; each call is isolated from the others' failures. */
export class Dispatch {
  readonly #handlers: Handlers;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #upgradeTimeout: number;
  readonly #stats: PushStats;
  /** Whether handler durations are measured (only when metrics can be scraped). */
  readonly #timed: boolean;
  #sampled = 0;
  /** Connections already told (at debug level) that their messages have no handler. */
  readonly #unhandledNoted = new WeakSet<Connection>();

  constructor(
    handlers: Handlers,
    { server, log, upgradeTimeout, stats, timed }: {
      server: Server;
      log: Logger;
      upgradeTimeout: number;
      stats: PushStats;
      timed: boolean;
    },
  ) {
    this.#timed = timed;
    this.#stats = stats;
    this.#handlers = handlers;
    this.#server = server;
    this.#log = log;
    this.#upgradeTimeout = upgradeTimeout;
  }

  /** The handlers file's exports. */
  get handlers(): Handlers {
    return this.#handlers;
  }

  has(name: keyof Handlers): boolean {
    return typeof this.#handlers[name] === "function";
  }

  /** A text, binary or ping message from a client: one path for all three. */
  message(conn: Connection, event: MessageEvent): Promise<void> | undefined {
    const handler = this.#handlers[event.type] as MessageHandler | undefined;
    if (!handler) {
      if (event.type !== "ping" && !this.#unhandledNoted.has(conn)) {
        this.#unhandledNoted.add(conn);
        this.#log.debug(
          `connection ${conn.id}: no ${event.type} handler; its ${event.type} messages are dropped`,
        );
      }
      return undefined;
    }
    // With metrics on, one message in SAMPLE_EVERY is timed: the histogram keeps its shape, and
    // the per-message path stays free of clock reads (two cost ~200 ns in this Deno).
    if (this.#timed && (++this.#sampled & (SAMPLE_EVERY - 1)) === 0) {
      return this.call(
        { event: event.type, conn: conn.id },
        () => handler(conn, event.data, this.#server),
      );
    }
    // The per-message path, untimed: no closure, no clock, one counter.
    const counts = this.#stats.handlers[event.type];
    counts.calls++;
    try {
      const result = handler(conn, event.data, this.#server);
      if (result instanceof Promise) {
        return result.then(undefined, (e) => this.#failed({ event: event.type, conn: conn.id }, e));
      }
    } catch (e) {
      this.#failed({ event: event.type, conn: conn.id }, e);
    }
    return undefined;
  }

  /** Counts and logs a handler's throw or rejection (its call is already counted). */
  #failed(site: HandlerSite, e: unknown): void {
    this.#stats.handlers[site.event].errors++;
    this.#logFailure(site, e);
  }

  #logFailure(site: HandlerSite, e: unknown): void {
    const where = site.conn === undefined ? "" : ` (connection ${site.conn})`;
    this.#log.error(`handler ${site.event} failed${where}: ${describeError(e)}`);
  }

  /**
   * Runs one handler; logs (never rethrows) a throw or rejection. A promise only if async. Its
   * duration is measured only when the metrics can be scraped (--admin-listen).
   */
  call(site: HandlerSite, fn: () => unknown): Promise<void> | undefined {
    const timing = this.#stats.handlers[site.event];
    const started = this.#timed ? performance.now() : 0;
    const finish = (failed: boolean) => {
      if (this.#timed) {
        timing.record((performance.now() - started) / 1000, failed);
      } else {
        timing.calls++;
        if (failed) timing.errors++;
      }
    };
    const fail = (e: unknown) => {
      finish(true);
      this.#logFailure(site, e);
    };
    try {
      const result = fn();
      if (result instanceof Promise) return result.then(() => finish(false), fail);
      finish(false);
    } catch (e) {
      fail(e);
    }
    return undefined;
  }

  /**
   * Runs `upgrade` within --upgrade-timeout. Its answer, or the refusal when it threw (500) or
   * took too long (503).
   */
  async upgrade(
    request: UpgradeRequest,
    conn: number,
  ): Promise<{ answer: UpgradeResult } | { refuse: UpgradeDecision }> {
    const handler = this.#handlers.upgrade;
    if (!handler) return { answer: undefined };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#upgradeTimeout);
    });
    const timing = this.#stats.handlers.upgrade;
    const started = performance.now();
    let failed = true;
    try {
      const result: UpgradeResult | "timeout" = await Promise.race([
        Promise.resolve().then(() => handler(request)),
        timeout,
      ]);
      if (result === "timeout") {
        this.#log.warn(
          `upgrade handler took over ${this.#upgradeTimeout} ms (connection ${conn}); answered 503`,
        );
        return { refuse: refuse(503, "The server is busy; try again") };
      }
      failed = false;
      return { answer: result };
    } catch (e) {
      this.#log.error(`handler upgrade failed (connection ${conn}): ${describeError(e)}`);
      return { refuse: refuse(500, "Internal server error") };
    } finally {
      clearTimeout(timer);
      timing.record((performance.now() - started) / 1000, failed);
    }
  }
}

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
  /** Connections already told (at debug level) that their messages have no handler. */
  readonly #unhandledNoted = new WeakSet<Connection>();

  constructor(
    handlers: Handlers,
    { server, log, upgradeTimeout, stats }: {
      server: Server;
      log: Logger;
      upgradeTimeout: number;
      stats: PushStats;
    },
  ) {
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
    return this.call(
      { event: event.type, conn: conn.id },
      () => handler(conn, event.data, this.#server),
    );
  }

  /** Runs one handler; logs (never rethrows) a throw or rejection. A promise only if async. */
  call(site: HandlerSite, fn: () => unknown): Promise<void> | undefined {
    const timing = this.#stats.handlers[site.event];
    const started = performance.now();
    const done = (failed: boolean) => timing.record((performance.now() - started) / 1000, failed);
    const fail = (e: unknown) => {
      done(true);
      const where = site.conn === undefined ? "" : ` (connection ${site.conn})`;
      this.#log.error(`handler ${site.event} failed${where}: ${describeError(e)}`);
    };
    try {
      const result = fn();
      if (result instanceof Promise) return result.then(() => done(false), fail);
      done(false);
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

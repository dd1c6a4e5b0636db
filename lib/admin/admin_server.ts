// Owns the admin listener (--admin-listen): /metrics, /healthz, /readyz, the status page at /
// and its /status.json, on an address apart from the public WebSocket port. Off by default.

import type { Logger } from "../api/handlers.ts";
import { errorMessage } from "../api/log.ts";
import { parseHostPort } from "../api/options.ts";
import type { PushMetrics } from "../metrics/metrics.ts";
import {
  SAMPLE_INTERVAL_MS,
  StatusHistory,
  statusSnapshot,
  type StatusSources,
  takeSample,
} from "./status.ts";
import { STATUS_PAGE_CSP, statusPageHtml } from "./status_page.ts";

const HTTP_OK = 200;
const HTTP_NOT_FOUND = 404;
const HTTP_METHOD_NOT_ALLOWED = 405;
const HTTP_SERVICE_UNAVAILABLE = 503;
const TEXT = "text/plain; charset=utf-8";

/** The problems that make the server unready, one short line each; empty when ready. */
export type ReadinessCheck = () => readonly string[] | Promise<readonly string[]>;

/**
 * What an operator should know that leaves the server ready (history kept in memory only), one
 * short line each: /readyz lists them after `warning: ` and stays 200.
 */
export type ReadinessWarnings = () => readonly string[];

/** How a warning line of /readyz begins. */
export const WARNING_PREFIX = "warning: ";

export interface AdminServerOptions {
  /** "host:port" as given to --admin-listen; port 0 picks a free port, which is logged. */
  readonly listen: string;
  readonly metrics: PushMetrics;
  /** Called on each /readyz and each status poll. */
  readonly readiness: ReadinessCheck;
  /** Called with `readiness`; none when not given. */
  readonly warnings?: ReadinessWarnings;
  readonly status?: StatusSources;
  readonly log: Logger;
  /** Shown in the status page title (e.g. the public address). */
  readonly title?: string;
  /** Milliseconds between the status page's history samples. */
  readonly sampleIntervalMs?: number;
}

export interface AdminServer {
  readonly addr: Deno.NetAddr;
  /** Stops listening and sampling; waits for requests in flight. */
  close(): Promise<void>;
}

/** Starts the admin listener, or returns a one-line error (bad address, port taken). */
export function startAdminServer(options: AdminServerOptions): AdminServer | { error: string } {
  const where = parseHostPort(options.listen);
  if (!where) return { error: `--admin-listen: '${options.listen}' is not host:port` };
  const history = new StatusHistory();
  const startedAt = Date.now();
  const sources = options.status ?? {};
  const handler = (request: Request): Promise<Response> | Response =>
    route(request, { options, history, startedAt, sources });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: where.hostname,
      port: where.port,
      onListen: () => {},
      onError: (e) => {
        options.log.error(`admin: ${errorMessage(e)}`);
        return new Response("Internal server error\n", { status: 500 });
      },
    }, handler);
  } catch (e) {
    return { error: `cannot listen on ${options.listen} for --admin-listen: ${errorMessage(e)}` };
  }
  const addr = server.addr;
  options.log.info(
    `admin listener on http://${
      hostForUrl(addr.hostname)
    }:${addr.port}/ (metrics, healthz, readyz, status)`,
    { event: "admin_listen", port: addr.port },
  );
  history.record(takeSample(options.metrics, Date.now()));
  const sampler = setInterval(
    () => history.record(takeSample(options.metrics, Date.now())),
    options.sampleIntervalMs ?? SAMPLE_INTERVAL_MS,
  );
  Deno.unrefTimer(sampler);
  return {
    addr,
    async close() {
      clearInterval(sampler);
      await server.shutdown();
    },
  };
}

interface Context {
  readonly options: AdminServerOptions;
  readonly history: StatusHistory;
  readonly startedAt: number;
  readonly sources: StatusSources;
}

async function route(request: Request, ctx: Context): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("Only GET and HEAD\n", {
      status: HTTP_METHOD_NOT_ALLOWED,
      headers: { allow: "GET, HEAD", "content-type": TEXT },
    });
  }
  const path = new URL(request.url).pathname;
  switch (path) {
    case "/metrics":
      return new Response(await ctx.options.metrics.scrape(), {
        headers: { "content-type": ctx.options.metrics.contentType, "cache-control": "no-store" },
      });
    case "/healthz":
      // Alive: the event loop answered. Nothing else is checked, so a restart is never
      // triggered by a dependency that a restart cannot fix.
      return text(HTTP_OK, "ok\n");
    case "/readyz": {
      const problems = await checkReadiness(ctx.options.readiness);
      const warnings = checkWarnings(ctx.options.warnings)
        .map((w) => `${WARNING_PREFIX}${oneLine(w)}\n`).join("");
      if (problems.length === 0) return text(HTTP_OK, `ready\n${warnings}`);
      const lines = problems.map((p) => `${oneLine(p)}\n`).join("");
      return text(HTTP_SERVICE_UNAVAILABLE, lines + warnings);
    }
    case "/status.json": {
      const problems = await checkReadiness(ctx.options.readiness);
      const body = statusSnapshot(ctx.options.metrics, {
        now: Date.now(),
        startedAt: ctx.startedAt,
        sources: ctx.sources,
        history: ctx.history,
        problems,
        warnings: checkWarnings(ctx.options.warnings),
      });
      return new Response(JSON.stringify(body), {
        headers: { "content-type": "application/json", "cache-control": "no-store" },
      });
    }
    case "/":
      return new Response(statusPageHtml({ title: ctx.options.title ?? "push-server" }), {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": STATUS_PAGE_CSP,
          "cache-control": "no-store",
        },
      });
    default:
      return text(HTTP_NOT_FOUND, "Not found: try /, /metrics, /healthz or /readyz\n");
  }
}

/** A check that throws is itself a problem, reported rather than crashing the endpoint. */
async function checkReadiness(check: ReadinessCheck): Promise<readonly string[]> {
  try {
    return await check();
  } catch (e) {
    return [`readiness check failed: ${errorMessage(e)}`];
  }
}

/** Warnings never fail readiness: one that throws is reported as a warning itself. */
function checkWarnings(check: ReadinessWarnings | undefined): readonly string[] {
  try {
    return check?.() ?? [];
  } catch (e) {
    return [`readiness warnings failed: ${errorMessage(e)}`];
  }
}

function text(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { "content-type": TEXT, "cache-control": "no-store" },
  });
}

function oneLine(problem: string): string {
  return problem.replace(/[\r\n]+/g, " ");
}

function hostForUrl(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

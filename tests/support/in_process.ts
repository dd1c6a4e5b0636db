// Test support: runs the real PushServer inside the test process, on a real Deno.listen socket
// on port 0, with a FIFO of its own and a logger whose lines the test can wait for.

import type { Handlers, Logger } from "../../lib/api/handlers.ts";
import { parseCommandLine } from "../../lib/api/options.ts";
import { PushServer, type ServerParts } from "../../lib/server/server.ts";
import { loadTokenKeys } from "../../lib/auth/keys.ts";

export interface InProcessServer {
  readonly server: PushServer;
  readonly port: number;
  readonly fifo: string;
  /** Every log line so far, as `level: message`. */
  readonly lines: string[];
  /** Resolves with the first line (past or future) matching `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

export interface InProcessOptions {
  /** Command-line style options, e.g. ["--max-queue", "1MiB"]. */
  readonly args?: readonly string[];
  readonly handlers?: Handlers;
  readonly resources?: ServerParts["resources"];
  /** Turns tokens on with this HS256 secret (as --token-secret does through main.ts). */
  readonly tokenSecret?: string;
  /** The --state-dir, given the test's temporary directory (default: `<dir>/state`). */
  readonly stateDir?: (dir: string) => string;
}

/** Starts a server, runs `fn`, then shuts the server down and removes its FIFO. */
export async function withInProcessServer(
  options: InProcessOptions,
  fn: (s: InProcessServer) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-inproc-" });
  const fifo = `${dir}/push.fifo`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  if (!made.success) throw new Error(`mkfifo ${fifo} failed`);
  const parsed = parseCommandLine(
    [
      ...["--port", "0", "--fifo", fifo],
      ...["--state-dir", options.stateDir?.(dir) ?? `${dir}/state`],
      ...(options.args ?? []),
    ],
    () => undefined,
  );
  if (parsed.kind !== "run") throw new Error(`bad test options: ${JSON.stringify(parsed)}`);
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const record = (level: string) => (message: string) => {
    const line = `${level}: ${message}`;
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  const log: Logger = {
    error: record("error"),
    warn: record("warn"),
    info: record("info"),
    debug: record("debug"),
  };
  const loaded = options.tokenSecret === undefined
    ? undefined
    : await loadTokenKeys({ secret: options.tokenSecret });
  if (loaded && !loaded.ok) throw new Error(loaded.message);
  const server = new PushServer(parsed.options, {
    handlers: options.handlers ?? {},
    log,
    resources: options.resources,
    tokenKeys: loaded?.keys,
  });
  const addr = await server.start();
  const waitForLog = (pattern: RegExp, timeoutMs = 5000) => {
    const seen = lines.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.findIndex((w) => w.pattern === pattern), 1);
        reject(
          new Error(`no log line matched ${pattern} in ${timeoutMs} ms:\n${lines.join("\n")}`),
        );
      }, timeoutMs);
      waiters.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  };
  try {
    await fn({ server, port: addr.port, fifo, lines, waitForLog });
  } finally {
    await server.shutdown();
    // The FIFO reader may be blocked opening the FIFO: an open for reading and writing (which
    // never blocks on Linux) lets that open complete, and the stopped reader closes it.
    try {
      const w = await Deno.open(fifo, { read: true, write: true });
      w.close();
    } catch { /* already gone */ }
    await Deno.remove(dir, { recursive: true });
  }
}

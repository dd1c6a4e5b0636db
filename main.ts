// The command line entry: parse options, load the handlers file, start the server, and stop
// it on SIGINT/SIGTERM. Every failure to start ends in one line on stderr, with these codes:
//   0  normal exit (--help, --version, a shutdown by signal)
//   1  a failure that may pass (the port is in use, the address is not available, a second
//      signal cut the shutdown short): systemd's Restart=on-failure tries again
//   2  a configuration error (bad option, handlers file, FIFO, a missing --allow-net or
//      --allow-read): restarting cannot help, and the unit's RestartPreventExitStatus=2 says so

import { prepareFifo } from "./lib/sources/fifo.ts";
import type { Handlers } from "./lib/api/handlers.ts";
import { loadHandlers } from "./lib/api/load_handlers.ts";
import { createLogger, errorMessage } from "./lib/api/log.ts";
import { helpText, type Options, parseCommandLine } from "./lib/api/options.ts";
import { publicResources } from "./lib/server/resources.ts";
import type { TokenKeys } from "./lib/auth/token.ts";
import { AdminListenError, PushServer } from "./lib/server/server.ts";
import { VERSION } from "./lib/api/version.ts";

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

function die(message: string, code = EXIT_USAGE): never {
  console.error(`push-server: ${message}`);
  Deno.exit(code);
}

/** `host:port` as Deno's net permission and the logs spell it (IPv6 in brackets). */
function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Checks the permissions normal operation needs, without prompting: a missing --allow-net or
 * --allow-read is one line (exit 2) instead of deno's prompt or a failure half-way through.
 */
function missingPermission(options: Options): string | null {
  const address = hostPort(options.host, options.port);
  if (Deno.permissions.querySync({ name: "net", host: address }).state !== "granted") {
    return `network access is not granted: run deno with --allow-net (to listen on ${address})`;
  }
  if (Deno.permissions.querySync({ name: "read", path: options.fifo }).state !== "granted") {
    return `read access is not granted: run deno with --allow-read (to read ${options.fifo})`;
  }
  return null;
}

/** One line and an exit code for a failed listen: 1 when another try may succeed. */
function listenFailure(e: unknown, address: string): { message: string; code: number } {
  const prefix = `cannot listen on ${address}`;
  if (e instanceof Deno.errors.AddrInUse) {
    return {
      message:
        `${prefix}: the port is already in use by another process (pick another with --port)`,
      code: EXIT_FAILURE,
    };
  }
  if (e instanceof Deno.errors.AddrNotAvailable) {
    return {
      message: `${prefix}: no such address on this host (check --host)`,
      code: EXIT_FAILURE,
    };
  }
  if (e instanceof Deno.errors.NotCapable) {
    return {
      message: `${prefix}: network access is not granted: run deno with --allow-net`,
      code: EXIT_USAGE,
    };
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return {
      message: `${prefix}: permission denied (ports below 1024 need privileges; pick another)`,
      code: EXIT_USAGE,
    };
  }
  return { message: `${prefix}: ${errorMessage(e)}`, code: EXIT_FAILURE };
}

/** Reads PUSH_* variables only where env access is already granted; never prompts. */
function envReader(): (name: string) => string | undefined {
  const granted = Deno.permissions.querySync({ name: "env" }).state === "granted";
  return granted ? (name) => Deno.env.get(name) : () => undefined;
}

async function main(): Promise<void> {
  const parsed = parseCommandLine(Deno.args, envReader());
  switch (parsed.kind) {
    case "help":
      console.log(helpText(VERSION));
      return;
    case "version":
      console.log(`push-server ${VERSION}`);
      return;
    case "error":
      die(parsed.message);
  }
  const options = parsed.options;
  const log = createLogger({ level: options.logLevel, format: options.logFormat });
  const denied = missingPermission(options);
  if (denied) die(denied);

  let handlers: Handlers = {};
  if (options.handlers) {
    const loaded = await loadHandlers(options.handlers);
    if ("error" in loaded) die(loaded.error);
    for (const warning of loaded.warnings) log.warn(warning);
    handlers = loaded.handlers;
  }
  const fifoError = await prepareFifo(options.fifo, log);
  if (fifoError) die(fifoError.error);

  const resources = await publicResources(options);
  const tokenKeys = await loadKeys(options);
  const server = new PushServer(options, { handlers, log, resources, tokenKeys });
  try {
    await server.start();
  } catch (e) {
    if (e instanceof AdminListenError) die(e.message, EXIT_FAILURE);
    const failure = listenFailure(e, hostPort(options.host, options.port));
    die(failure.message, failure.code);
  }

  let signalled = false;
  const stop = (signal: Deno.Signal) => {
    if (signalled) {
      // A second signal exits at once; exit 1, since clients may not have had their 1001.
      log.error(`${signal} during shutdown: exiting at once, without waiting for clients`);
      Deno.exit(EXIT_FAILURE);
    }
    signalled = true;
    server.shutdown().finally(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}

/** The token keys from --token-secret / --token-public-key; undefined when tokens are off. */
async function loadKeys(options: Options): Promise<TokenKeys | undefined> {
  if (!options.tokenSecret && !options.tokenPublicKey) return undefined;
  // Loaded only when tokens are on: npm:jose is needed only then.
  const { loadTokenKeys } = await import("./lib/auth/keys.ts");
  const loaded = await loadTokenKeys({
    secret: options.tokenSecret,
    publicKeyFile: options.tokenPublicKey,
  });
  if (loaded && !loaded.ok) die(loaded.message);
  return loaded?.keys;
}

if (import.meta.main) await main();

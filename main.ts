// The command line entry: parse options, load the handlers file, start the server, and stop
// it on SIGINT/SIGTERM. Every user mistake ends in one line on stderr and exit code 2.

import { prepareFifo } from "./lib/sources/fifo.ts";
import type { Handlers } from "./lib/api/handlers.ts";
import { loadHandlers } from "./lib/api/load_handlers.ts";
import { createLogger, errorMessage } from "./lib/api/log.ts";
import { helpText, parseCommandLine } from "./lib/api/options.ts";
import { PushServer } from "./lib/server/server.ts";
import { VERSION } from "./lib/api/version.ts";

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

function die(message: string, code = EXIT_USAGE): never {
  console.error(`push-server: ${message}`);
  Deno.exit(code);
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

  let handlers: Handlers = {};
  if (options.handlers) {
    const loaded = await loadHandlers(options.handlers);
    if ("error" in loaded) die(loaded.error);
    for (const warning of loaded.warnings) log.warn(warning);
    handlers = loaded.handlers;
  }
  const fifoError = await prepareFifo(options.fifo, log);
  if (fifoError) die(fifoError.error);

  const server = new PushServer(options, { handlers, log });
  try {
    await server.start();
  } catch (e) {
    die(`cannot listen on ${options.host}:${options.port}: ${errorMessage(e)}`, EXIT_FAILURE);
  }

  let signalled = false;
  const stop = () => {
    if (signalled) Deno.exit(EXIT_FAILURE); // A second signal exits at once.
    signalled = true;
    server.shutdown().finally(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();

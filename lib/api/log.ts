// Owns logging: one line per event on stderr, filtered by level.

import type { Logger } from "./handlers.ts";
import { LOG_LEVELS, type LogLevel } from "./options.ts";

const encoder = new TextEncoder();

/** A logger that writes `level: message` lines at or above `level` to stderr. */
export function createLogger(level: LogLevel): Logger {
  const rank = LOG_LEVELS.indexOf(level);
  const write = (at: LogLevel) => {
    if (LOG_LEVELS.indexOf(at) > rank) return () => {};
    return (message: string) => {
      const line = `${at}: ${message.replaceAll("\n", " | ")}\n`;
      Deno.stderr.writeSync(encoder.encode(line));
    };
  };
  return { error: write("error"), warn: write("warn"), info: write("info"), debug: write("debug") };
}

/** The message of an unknown thrown value, on one line. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return `${e.name === "Error" ? "" : e.name + ": "}${e.message}`;
  return String(e);
}

/**
 * An error for a handler's log line: its message, and where it was thrown (the first stack
 * frame outside push-server's own lib/), as `file:line:column`.
 */
export function describeError(e: unknown): string {
  const message = errorMessage(e);
  if (!(e instanceof Error) || !e.stack) return message;
  for (const line of e.stack.split("\n").slice(1)) {
    const at = /\(?((?:file|https?):\/\/[^\s()]+:\d+:\d+)\)?\s*$/.exec(line.trim());
    if (at && !at[1].includes("/lib/")) return `${message} (at ${at[1]})`;
  }
  return message;
}

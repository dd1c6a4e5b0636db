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

/** Everything under lib/: frames here are push-server's own, not the handler author's. */
const LIB_URL = new URL("../", import.meta.url).href;
/** A V8 stack frame's location: `at fn (url:line:col)` or `at url:line:col`. */
const FRAME = /^\s*at (?:.*\()?((?:file|https?):\/\/[^\s()]+):(\d+):(\d+)\)?\s*$/;

/**
 * The message of a thrown value plus where it came from: the first `file:line:column` of its
 * stack that is not inside lib/, which for a handler's error is the handler's own frame.
 * Example: `TypeError: x is undefined (at /srv/app/handlers.ts:12:7)`.
 */
export function describeError(e: unknown): string {
  const message = errorMessage(e).replaceAll("\n", " | ");
  const where = e instanceof Error ? firstOutsideFrame(e.stack ?? "") : undefined;
  return where ? `${message} (at ${where})` : message;
}

function firstOutsideFrame(stack: string): string | undefined {
  for (const line of stack.split("\n")) {
    const m = FRAME.exec(line);
    if (!m || m[1].startsWith(LIB_URL)) continue;
    return `${displayUrl(m[1])}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

/** A file: URL as a path; any other URL as is. */
export function displayUrl(url: string): string {
  if (!url.startsWith("file://")) return url;
  try {
    return decodeURIComponent(new URL(url).pathname);
  } catch {
    return url;
  }
}

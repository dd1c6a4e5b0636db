// Owns logging: one line per event on stderr, filtered by level, as plain text (the default)
// or as one JSON object per line (--log-format json) for journald and Loki.

import type { LogFields, Logger } from "./handlers.ts";
import { LOG_LEVELS, type LogFormat, type LogLevel } from "./options.ts";

const encoder = new TextEncoder();

/** Members every JSON line has; a field with one of these names is left out. */
const RESERVED_JSON_KEYS: ReadonlySet<string> = new Set(["time", "level", "msg"]);

export interface LoggerOptions {
  readonly level: LogLevel;
  /** "text" (default): `level: message key=value`; "json": `{"time","level","msg",…fields}`. */
  readonly format?: LogFormat;
  /** Where each finished line goes (with its newline); stderr by default. */
  readonly write?: (line: string) => void;
  /** The clock for JSON `time`; the real one by default. */
  readonly now?: () => Date;
}

/** A logger that writes lines at or above `level`. */
export function createLogger(options: LoggerOptions): Logger {
  const rank = LOG_LEVELS.indexOf(options.level);
  const write = options.write ?? writeStderr;
  const now = options.now ?? (() => new Date());
  const format = options.format === "json"
    ? (at: LogLevel, message: string, fields?: LogFields) => jsonLine(at, message, { fields, now })
    : textLine;
  const at = (level: LogLevel) => {
    if (LOG_LEVELS.indexOf(level) > rank) return () => {};
    return (message: string, fields?: LogFields) => write(format(level, message, fields));
  };
  return { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") };
}

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line));
}

function textLine(level: LogLevel, message: string, fields?: LogFields): string {
  let line = `${level}: ${message.replaceAll("\n", " | ")}`;
  if (fields) {
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const text = String(value);
      line += ` ${key}=${/[\s"=]/.test(text) || text === "" ? JSON.stringify(text) : text}`;
    }
  }
  return line + "\n";
}

function jsonLine(
  level: LogLevel,
  message: string,
  { fields, now }: { fields: LogFields | undefined; now: () => Date },
): string {
  const record: Record<string, unknown> = { time: now().toISOString(), level, msg: message };
  if (fields) {
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined && !RESERVED_JSON_KEYS.has(key)) record[key] = value;
    }
  }
  // JSON.stringify escapes newlines, so a message can never split the line.
  return JSON.stringify(record) + "\n";
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

// Owns the server's settings: their defaults, the command line, the PUSH_* environment
// variables, and the one-line errors for bad values. Errors are values, never thrown.

import { parseArgs } from "node:util";
import { DEFAULT_COMPRESSION_LEVEL, DEFAULT_COMPRESSION_THRESHOLD } from "../protocol/deflate.ts";

export type LogLevel = "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

/** Every setting, after defaults, environment and command line have been applied. */
export interface Options {
  readonly host: string;
  readonly port: number;
  readonly fifo: string;
  /** Milliseconds between `loop` events. */
  readonly tick: number;
  readonly maxMessageSize: number;
  /** Bytes queued for one client before it is closed as a slow consumer. */
  readonly maxQueue: number;
  readonly handshakeTimeout: number;
  readonly upgradeTimeout: number;
  /** Silence after which the server pings a client. */
  readonly pingInterval: number;
  /** How long a ping may go unanswered before the client is dropped. */
  readonly pongTimeout: number;
  readonly closeTimeout: number;
  readonly shutdownTimeout: number;
  readonly logLevel: LogLevel;
  readonly allowedOrigins: readonly string[];
  readonly subprotocols: readonly string[];
  readonly trustedProxies: readonly string[];
  /** permessage-deflate (RFC 7692) is negotiated with clients that offer it. */
  readonly compression: boolean;
  /** Messages under this many bytes are sent uncompressed. */
  readonly compressionThreshold: number;
  /** zlib compression level, 1 (fastest) to 9 (smallest). */
  readonly compressionLevel: number;
  /** The handlers file, or undefined for the default broadcast. */
  readonly handlers: string | undefined;
}

type Kind = "string" | "port" | "duration" | "size" | "level" | "list" | "switch" | "zlib-level";

interface Spec {
  readonly key: keyof Options;
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly help: string;
  /** The default as shown in --help and parsed like user input. */
  readonly default: string;
}

const MiB = 1024 * 1024;

/** One row per option; --help, the environment and parsing all come from this table. */
export const OPTION_SPECS: readonly Spec[] = [
  {
    key: "host",
    flag: "host",
    env: "PUSH_HOST",
    kind: "string",
    default: "127.0.0.1",
    help: "address to listen on",
  },
  {
    key: "port",
    flag: "port",
    env: "PUSH_PORT",
    kind: "port",
    default: "8080",
    help: "TCP port to listen on",
  },
  {
    key: "fifo",
    flag: "fifo",
    env: "PUSH_FIFO",
    kind: "string",
    default: "./push.fifo",
    help: "named pipe to read messages from",
  },
  {
    key: "tick",
    flag: "tick",
    env: "PUSH_TICK",
    kind: "duration",
    default: "200ms",
    help: "interval of the loop event",
  },
  {
    key: "maxMessageSize",
    flag: "max-message-size",
    env: "PUSH_MAX_MESSAGE_SIZE",
    kind: "size",
    default: "16MiB",
    help: "largest message in or out, and largest FIFO line",
  },
  {
    key: "maxQueue",
    flag: "max-queue",
    env: "PUSH_MAX_QUEUE",
    kind: "size",
    default: "",
    help:
      "bytes queued for one client before it is closed as a slow consumer (default: max-message-size + 1MiB)",
  },
  {
    key: "handshakeTimeout",
    flag: "handshake-timeout",
    env: "PUSH_HANDSHAKE_TIMEOUT",
    kind: "duration",
    default: "10s",
    help: "time allowed to complete the opening handshake",
  },
  {
    key: "upgradeTimeout",
    flag: "upgrade-timeout",
    env: "PUSH_UPGRADE_TIMEOUT",
    kind: "duration",
    default: "5s",
    help: "time the upgrade handler may take before the client gets 503",
  },
  {
    key: "pingInterval",
    flag: "ping-interval",
    env: "PUSH_PING_INTERVAL",
    kind: "duration",
    default: "30s",
    help: "silence after which a client is pinged",
  },
  {
    key: "pongTimeout",
    flag: "pong-timeout",
    env: "PUSH_PONG_TIMEOUT",
    kind: "duration",
    default: "10s",
    help: "time a ping may go unanswered before the client is dropped",
  },
  {
    key: "closeTimeout",
    flag: "close-timeout",
    env: "PUSH_CLOSE_TIMEOUT",
    kind: "duration",
    default: "5s",
    help: "time to wait for the closing handshake before dropping TCP",
  },
  {
    key: "shutdownTimeout",
    flag: "shutdown-timeout",
    env: "PUSH_SHUTDOWN_TIMEOUT",
    kind: "duration",
    default: "5s",
    help: "time to wait for clients' close replies on shutdown",
  },
  {
    key: "logLevel",
    flag: "log-level",
    env: "PUSH_LOG_LEVEL",
    kind: "level",
    default: "info",
    help: "error, warn, info or debug",
  },
  {
    key: "compression",
    flag: "compression",
    env: "PUSH_COMPRESSION",
    kind: "switch",
    default: "on",
    help: "permessage-deflate with clients that offer it: on or off",
  },
  {
    key: "compressionThreshold",
    flag: "compression-threshold",
    env: "PUSH_COMPRESSION_THRESHOLD",
    kind: "size",
    default: `${DEFAULT_COMPRESSION_THRESHOLD}B`,
    help: "messages under this size are sent uncompressed",
  },
  {
    key: "compressionLevel",
    flag: "compression-level",
    env: "PUSH_COMPRESSION_LEVEL",
    kind: "zlib-level",
    default: String(DEFAULT_COMPRESSION_LEVEL),
    help: "zlib level, 1 (fastest) to 9 (smallest)",
  },
  {
    key: "allowedOrigins",
    flag: "allowed-origin",
    env: "PUSH_ALLOWED_ORIGINS",
    kind: "list",
    default: "",
    help: "accept only this Origin (repeatable; default: any)",
  },
  {
    key: "subprotocols",
    flag: "subprotocol",
    env: "PUSH_SUBPROTOCOLS",
    kind: "list",
    default: "",
    help: "subprotocol to accept (repeatable, in order of preference)",
  },
  {
    key: "trustedProxies",
    flag: "trusted-proxy",
    env: "PUSH_TRUSTED_PROXIES",
    kind: "list",
    default: "",
    help: "proxy address whose X-Forwarded-For / X-Real-IP is believed (repeatable)",
  },
];

/** The result of reading the command line: run, print and exit, or a one-line error. */
export type ParsedCommandLine =
  | { readonly kind: "run"; readonly options: Options }
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | { readonly kind: "error"; readonly message: string };

/**
 * Reads options from the command line over the environment over the defaults.
 * `env` is a lookup that returns undefined for unset variables (or when env access is not granted).
 */
export function parseCommandLine(
  args: readonly string[],
  env: (name: string) => string | undefined,
): ParsedCommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: argsConfig(),
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    return { kind: "error", message: cleanParseError(e) };
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (positionals.length > 1) {
    return { kind: "error", message: `expected one handlers file, got ${positionals.length}` };
  }
  const out: Record<string, unknown> = { handlers: positionals[0] };
  for (const spec of OPTION_SPECS) {
    const fromCli = values[spec.flag] as string | string[] | undefined;
    // An empty variable (systemd's `Environment=PUSH_PORT=`) counts as unset.
    const result = resolveOption(spec, { fromCli, fromEnv: env(spec.env) || undefined });
    if ("error" in result) return { kind: "error", message: result.error };
    out[spec.key] = result.value;
  }
  if (out.maxQueue === undefined) out.maxQueue = (out.maxMessageSize as number) + MiB;
  if ((out.maxQueue as number) < (out.maxMessageSize as number)) {
    // Every client would be closed as a slow consumer by one message of the largest size.
    return {
      kind: "error",
      message:
        `--max-queue (${out.maxQueue}) must be at least --max-message-size (${out.maxMessageSize})`,
    };
  }
  return { kind: "run", options: out as unknown as Options };
}

function argsConfig() {
  const config: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> =
    {
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
    };
  for (const spec of OPTION_SPECS) {
    config[spec.flag] = spec.kind === "list"
      ? { type: "string", multiple: true }
      : { type: "string" };
  }
  return config;
}

function cleanParseError(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  // node:util phrases these in several lines with hints meant for scripts; keep the first.
  const first = message.split("\n")[0].replace(/\. To specify a positional argument.*$/, "");
  return first.replace(/^Unknown option '([^']+)'.*/, "unknown option $1 (see --help)");
}

function resolveOption(
  spec: Spec,
  { fromCli, fromEnv }: { fromCli: string | string[] | undefined; fromEnv: string | undefined },
): { value: unknown } | { error: string } {
  if (spec.kind === "list") {
    if (Array.isArray(fromCli)) return { value: fromCli };
    if (fromEnv !== undefined) {
      return { value: fromEnv.split(",").map((s) => s.trim()).filter(Boolean) };
    }
    return { value: [] };
  }
  const source = typeof fromCli === "string"
    ? `--${spec.flag}`
    : fromEnv !== undefined
    ? spec.env
    : null;
  const raw = typeof fromCli === "string" ? fromCli : fromEnv ?? spec.default;
  if (raw === "" && spec.default === "") return { value: undefined };
  const value = parseValue(spec.kind, raw);
  if (value === undefined) {
    return { error: `${source ?? spec.flag}: ${describeBad(spec.kind, raw)}` };
  }
  return { value };
}

/** The value as typed, quoted, with control characters escaped so the error stays one line. */
function quoted(raw: string): string {
  return `'${JSON.stringify(raw).slice(1, -1)}'`;
}

function describeBad(kind: Kind, value: string): string {
  const raw = quoted(value);
  switch (kind) {
    case "port":
      return `${raw} is not a port number (0-65535)`;
    case "duration":
      return `${raw} is not a duration (like 500ms, 10s or 2m)`;
    case "size":
      return `${raw} is not a size in bytes (like 65536, 64KiB or 16MiB)`;
    case "level":
      return `${raw} is not a log level (${LOG_LEVELS.join(", ")})`;
    case "switch":
      return `${raw} is not on or off`;
    case "zlib-level":
      return `${raw} is not a compression level (1-9)`;
    default:
      return `${raw} is not valid`;
  }
}

function parseValue(kind: Kind, raw: string): unknown {
  switch (kind) {
    case "string":
      return raw === "" ? undefined : raw;
    case "port": {
      if (!/^\d{1,5}$/.test(raw)) return undefined;
      const port = Number(raw);
      return port <= 65535 ? port : undefined;
    }
    case "duration":
      return parseDuration(raw);
    case "size":
      return parseSize(raw);
    case "level":
      return (LOG_LEVELS as readonly string[]).includes(raw) ? raw : undefined;
    case "list":
      return raw.split(",");
    case "switch":
      return raw === "on" ? true : raw === "off" ? false : undefined;
    case "zlib-level":
      return /^[1-9]$/.test(raw) ? Number(raw) : undefined;
  }
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, "": 1 };

/** "250ms", "10s", "2m", or a bare number of milliseconds. Must be positive. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|)$/.exec(raw.trim());
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2]]);
  return ms > 0 ? ms : undefined;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: MiB,
  mb: MiB,
  mib: MiB,
  g: 1024 * MiB,
  gb: 1024 * MiB,
  gib: 1024 * MiB,
};

/** "65536", "64KiB", "16MiB" (binary units; k/M/G accepted as the same). Must be positive. */
export function parseSize(raw: string): number | undefined {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(raw.trim());
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2].toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The text of --help, built from the option table. */
export function helpText(version: string): string {
  const lines = [
    `push-server ${version}: pushes lines written to a named pipe to WebSocket clients.`,
    "",
    "Usage: push-server [options] [handlers.ts]",
    "",
    "Without a handlers file, every FIFO line is broadcast to every client.",
    "",
    "Options (each also read from its environment variable when --allow-env is granted;",
    "the command line wins):",
  ];
  for (const spec of OPTION_SPECS) {
    const flag = `  --${spec.flag}${spec.kind === "list" ? " <value>..." : " <value>"}`;
    const def = spec.default ? ` [default: ${spec.default}]` : "";
    lines.push(`${flag.padEnd(34)}${spec.help}${def}`);
    lines.push(`${"".padEnd(34)}env ${spec.env}`);
  }
  lines.push(`${"  -h, --help".padEnd(34)}print this help`);
  lines.push(`${"  -V, --version".padEnd(34)}print the version`);
  lines.push(
    "",
    "Durations take ms, s or m (a bare number is milliseconds); sizes take KiB or MiB.",
  );
  return lines.join("\n");
}

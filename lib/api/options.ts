// Owns the server's settings: their defaults, the command line, the PUSH_* environment
// variables, and the one-line errors for bad values. Errors are values, never thrown.

import { parseArgs } from "node:util";
import { DEFAULT_COMPRESSION_LEVEL, DEFAULT_COMPRESSION_THRESHOLD } from "../protocol/deflate.ts";

export type LogLevel = "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];
export type LogFormat = "text" | "json";
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

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
  /** Bytes queued for all clients (shared broadcast bytes counted once); past it the clients
   * holding the most are closed as slow consumers. */
  readonly maxQueueTotal: number;
  /** Time a client's queue may go without any write completing before it is a slow consumer. */
  readonly drainTimeout: number;
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
  readonly logFormat: LogFormat;
  /** "host:port" of the admin listener (/metrics, /healthz, /readyz, /), or undefined: off. */
  readonly adminListen: string | undefined;
  /** WebSocket connections in all before handshakes get 503; undefined: no limit. */
  readonly maxConnections: number | undefined;
  /** Connections from one client address before handshakes get 429; undefined: no limit. */
  readonly maxConnectionsPerIp: number | undefined;
  /** Handshakes per second from one client address (burst: the same number); undefined: off. */
  readonly handshakeRatePerIp: number | undefined;
  /** Inbound messages per second per connection before a close with 4001; undefined: off. */
  readonly messageRate: number | undefined;
  /** Messages a connection may send at once within --message-rate; undefined: the rate. */
  readonly messageBurst: number | undefined;
  /** permessage-deflate (RFC 7692) is negotiated with clients that offer it. */
  readonly compression: boolean;
  /** Messages under this many bytes are sent uncompressed. */
  readonly compressionThreshold: number;
  /** zlib compression level, 1 (fastest) to 9 (smallest). */
  readonly compressionLevel: number;
  /** The handlers file, or undefined for the default broadcast. */
  readonly handlers: string | undefined;
  /** The HS256 secret that push.v1 tokens (JWT) are signed with; tokens off when unset. */
  readonly tokenSecret: string | undefined;
  /** A PEM public key (or certificate) for RS256/ES256 tokens. */
  readonly tokenPublicKey: string | undefined;
  /** Time a push.v1 connection has to send its token, when tokens are on. */
  readonly authTimeout: number;
  /** Channels (in the grant form: `room.*`) whose subscribers get join and leave events. */
  readonly presenceEvents: readonly string[];
  /** Where channel history is kept (SQLite); memory only when it cannot be written. */
  readonly stateDir: string;
  /** Publications kept per channel for resume. */
  readonly historySize: number;
  /** How long publications are kept for resume. */
  readonly historyTtl: number;
  /** Bytes of history held in memory across all channels; the rest is read from disk. */
  readonly historyMemory: number;
  /** fsync every history commit: on, off, or auto (off only when a reboot can be detected). */
  readonly historyFsync: Switch;
  /** Channels one connection may be subscribed to at once. */
  readonly maxSubscriptions: number;
  /** The page at / on the public port: auto serves it only without a handlers file. */
  readonly page: Switch;
}

type Kind =
  | "string"
  | "port"
  | "duration"
  | "size"
  | "level"
  | "list"
  | "switch"
  | "count"
  | "log-format"
  | "address"
  | "on-off"
  | "zlib-level";

/** An on/off setting whose default depends on other settings. */
export type Switch = "auto" | "on" | "off";
const SWITCH_VALUES: readonly Switch[] = ["auto", "on", "off"];

interface Spec {
  readonly key: keyof Options;
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly help: string;
  /** The default as shown in --help and parsed like user input. */
  readonly default: string;
  /** What --help shows as the default when `default` is "" (computed or "none"). */
  readonly shownDefault?: string;
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
    shownDefault: "max-message-size + 1MiB",
    help: "bytes queued for one client before it is closed as a slow consumer",
  },
  {
    key: "maxQueueTotal",
    flag: "max-queue-total",
    env: "PUSH_MAX_QUEUE_TOTAL",
    kind: "size",
    default: "1GiB",
    help: "bytes queued for all clients; past it, those holding the most are closed",
  },
  {
    key: "drainTimeout",
    flag: "drain-timeout",
    env: "PUSH_DRAIN_TIMEOUT",
    kind: "duration",
    default: "30s",
    help: "time a client's queue may stall before it is closed as a slow consumer",
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
    kind: "on-off",
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
    shownDefault: "any",
    help: "accept only this Origin (repeatable)",
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
  {
    key: "page",
    flag: "page",
    env: "PUSH_PAGE",
    kind: "switch",
    default: "auto",
    help: "a page at / that shows arriving messages: auto (only without a handlers file), on, off",
  },
  {
    key: "logFormat",
    flag: "log-format",
    env: "PUSH_LOG_FORMAT",
    kind: "log-format",
    default: "text",
    help: "text, or json: one JSON object per line (time, level, msg, conn, event)",
  },
  {
    key: "adminListen",
    flag: "admin-listen",
    env: "PUSH_ADMIN_LISTEN",
    kind: "address",
    default: "",
    help:
      "host:port for /metrics, /healthz, /readyz and the status page (port 0: any free port; default: off)",
  },
  {
    key: "maxConnections",
    flag: "max-connections",
    env: "PUSH_MAX_CONNECTIONS",
    kind: "count",
    default: "",
    help: "connections in all; past it handshakes get 503; unset: no limit",
  },
  {
    key: "maxConnectionsPerIp",
    flag: "max-connections-per-ip",
    env: "PUSH_MAX_CONNECTIONS_PER_IP",
    kind: "count",
    default: "",
    help: "connections from one client address; past it handshakes get 429; unset: no limit",
  },
  {
    key: "handshakeRatePerIp",
    flag: "handshake-rate-per-ip",
    env: "PUSH_HANDSHAKE_RATE_PER_IP",
    kind: "count",
    default: "",
    help: "handshakes per second from one client address; past it 429; unset: no limit",
  },
  {
    key: "messageRate",
    flag: "message-rate",
    env: "PUSH_MESSAGE_RATE",
    kind: "count",
    default: "",
    help: "messages per second one client may send; past it a close with 4001; unset: no limit",
  },
  {
    key: "messageBurst",
    flag: "message-burst",
    env: "PUSH_MESSAGE_BURST",
    kind: "count",
    default: "",
    help: "messages one client may send at once within --message-rate; unset: the rate",
  },
  {
    key: "stateDir",
    flag: "state-dir",
    env: "PUSH_STATE_DIR",
    kind: "string",
    default: "./.push-state",
    help: "directory for channel history (needs --allow-write there; else memory only)",
  },
  {
    key: "historySize",
    flag: "history-size",
    env: "PUSH_HISTORY_SIZE",
    kind: "count",
    default: "1000",
    help: "publications kept per channel for resume",
  },
  {
    key: "historyTtl",
    flag: "history-ttl",
    env: "PUSH_HISTORY_TTL",
    kind: "duration",
    default: "60m",
    help: "how long publications are kept for resume",
  },
  {
    key: "historyMemory",
    flag: "history-memory",
    env: "PUSH_HISTORY_MEMORY",
    kind: "size",
    default: "64MiB",
    help: "history held in memory, all channels together; older entries are read from disk",
  },
  {
    key: "historyFsync",
    flag: "history-fsync",
    env: "PUSH_HISTORY_FSYNC",
    kind: "switch",
    default: "auto",
    help: "fsync each history commit: on (survives power loss), off, auto (on unless reboots show)",
  },
  {
    key: "maxSubscriptions",
    flag: "max-subscriptions",
    env: "PUSH_MAX_SUBSCRIPTIONS",
    kind: "count",
    default: "128",
    help: "channels one push.v1 connection may be subscribed to at once",
  },
  {
    key: "tokenSecret",
    flag: "token-secret",
    env: "PUSH_TOKEN_SECRET",
    kind: "string",
    default: "",
    help: "HS256 secret of push.v1 tokens (JWT); tokens are required when set",
  },
  {
    key: "tokenPublicKey",
    flag: "token-public-key",
    env: "PUSH_TOKEN_PUBLIC_KEY",
    kind: "string",
    default: "",
    help: "PEM public key file for RS256/ES256 tokens; tokens are required when set",
  },
  {
    key: "authTimeout",
    flag: "auth-timeout",
    env: "PUSH_AUTH_TIMEOUT",
    kind: "duration",
    default: "10s",
    help: "time a push.v1 client has to send its token",
  },
  {
    key: "presenceEvents",
    flag: "presence-events",
    env: "PUSH_PRESENCE_EVENTS",
    kind: "list",
    default: "",
    help: "channels whose subscribers get join/leave events (repeatable; room.* patterns)",
  },
];

/** The result of reading the command line: run, print and exit, or a one-line error. */
export type ParsedCommandLine =
  | { readonly kind: "run"; readonly options: Options }
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | { readonly kind: "error"; readonly message: string };

/** The variable that names the handlers file when no positional argument does. */
export const HANDLERS_ENV = "PUSH_HANDLERS";

/**
 * Reads options from the command line over the environment over the defaults.
 * `env` is a lookup that returns undefined for unset variables (or when env access is not granted).
 */
export function parseCommandLine(
  args: readonly string[],
  env: (name: string) => string | undefined,
): ParsedCommandLine {
  const joined = joinDashValues(args);
  if ("error" in joined) return { kind: "error", message: joined.error };
  let parsed;
  try {
    parsed = parseArgs({
      args: joined.args,
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
  // The positional argument wins over PUSH_HANDLERS, as the command line wins everywhere.
  const out: Record<string, unknown> = {
    handlers: positionals[0] ?? (env(HANDLERS_ENV) || undefined),
  };
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

const BOOLEAN_SHORTS = new Set(["-h", "-V"]);

/**
 * node:util refuses `--port -1` as "ambiguous": a value that starts with "-" might be a
 * forgotten value followed by another option. Join such a value to its option (`--port=-1`)
 * so that the option's own check says what is wrong with it; a following option (`--port
 * --help`) means the value is missing.
 */
function joinDashValues(args: readonly string[]): { args: string[] } | { error: string } {
  const takesValue = new Set(OPTION_SPECS.map((spec) => `--${spec.flag}`));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (!takesValue.has(arg) || next === undefined || !next.startsWith("-")) {
      out.push(arg);
      continue;
    }
    if (next.startsWith("--") || BOOLEAN_SHORTS.has(next)) {
      return { error: `${arg} needs a value (got the option ${quoted(next)} instead)` };
    }
    out.push(`${arg}=${next}`);
    i++;
  }
  return { args: out };
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
  return first
    .replace(/^Unknown option '([^']+)'.*/, "unknown option $1 (see --help)")
    .replace(/^Option '(--[\w-]+)(?: <value>)?' argument missing$/, "$1 needs a value");
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
  const negative = value.trim().startsWith("-");
  switch (kind) {
    case "port":
      return negative
        ? `${raw} is negative: a port is a number from 0 to 65535`
        : `${raw} is not a port number (0-65535)`;
    case "duration":
      return negative
        ? `${raw} is negative: a duration is positive, like 500ms, 10s or 2m`
        : `${raw} is not a duration (like 500ms, 10s or 2m)`;
    case "size": {
      const bare = /^\s*(\d+)\s*([kmg])\s*$/i.exec(value);
      if (bare) {
        const [, n, u] = bare;
        const unit = u.toUpperCase() === "K" ? "k" : u.toUpperCase();
        return `${raw} is ambiguous: write ${n}${unit.toUpperCase()}iB (binary, 1024-based) ` +
          `or ${n}${unit}B (decimal, 1000-based)`;
      }
      return negative
        ? `${raw} is negative: a size is a positive number of bytes, like 65536, 64KiB or 16MiB`
        : `${raw} is not a size in bytes (like 65536, 64KiB, 16MiB or 10MB)`;
    }
    case "level":
      return `${raw} is not a log level (${LOG_LEVELS.join(", ")})`;
    case "switch":
      return `${raw} is not one of ${SWITCH_VALUES.join(", ")}`;
    case "count":
      return `${raw} is not a positive whole number`;
    case "log-format":
      return `${raw} is not a log format (${LOG_FORMATS.join(", ")})`;
    case "address":
      return `${raw} is not host:port (like 127.0.0.1:9090, or port 0 for any free port)`;
    case "on-off":
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
    case "switch":
      return (SWITCH_VALUES as readonly string[]).includes(raw) ? raw : undefined;
    case "list":
      return raw.split(",");
    case "count":
      return /^\d+$/.test(raw) && Number(raw) > 0 && Number.isSafeInteger(Number(raw))
        ? Number(raw)
        : undefined;
    case "log-format":
      return (LOG_FORMATS as readonly string[]).includes(raw) ? raw : undefined;
    case "address":
      return parseHostPort(raw) ? raw : undefined;
    case "on-off":
      return raw === "on" ? true : raw === "off" ? false : undefined;
    case "zlib-level":
      return /^[1-9]$/.test(raw) ? Number(raw) : undefined;
  }
}

/** "127.0.0.1:9090", "[::1]:0" or "localhost:9090" as hostname and port, or undefined. */
export function parseHostPort(raw: string): { hostname: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(raw.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  return port <= 65535 ? { hostname: m[1] ?? m[2], port } : undefined;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, "": 1 };

/** "250ms", "10s", "2m", or a bare number of milliseconds. Must be positive. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|)$/.exec(raw.trim());
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2]]);
  return ms > 0 ? ms : undefined;
}

const KiB = 1024;
const kB = 1000;

/**
 * Size units, matched without regard to case: binary (KiB, MiB, GiB: powers of 1024) and
 * decimal (kB, MB, GB: powers of 1000, as SI and IEC 80000-13 define them). A bare k, M or G
 * could mean either and is refused with a hint.
 */
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: KiB,
  mib: KiB ** 2,
  gib: KiB ** 3,
  kb: kB,
  mb: kB ** 2,
  gb: kB ** 3,
};

/** "65536", "64KiB", "16MiB" (1024-based), "64kB", "10MB" (1000-based). Must be positive. */
export function parseSize(raw: string): number | undefined {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(raw.trim());
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2].toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The width --help fits in. */
export const HELP_WIDTH = 100;
const HELP_INDENT = 34;

/** The text of --help, built from the option table; no line is longer than HELP_WIDTH. */
export function helpText(version: string): string {
  const lines = [
    `push-server ${version}: pushes lines written to a named pipe to WebSocket clients.`,
    "",
    "Usage: push-server [options] [handlers.ts]",
    "",
    "Without a handlers file, every FIFO line is broadcast to every client. The handlers file",
    `is a path or the name of a built-in example; env ${HANDLERS_ENV}.`,
    "",
    "Options (each also read from its environment variable when --allow-env is granted;",
    "the command line wins):",
  ];
  for (const spec of OPTION_SPECS) {
    const flag = `  --${spec.flag}${spec.kind === "list" ? " <value>..." : " <value>"}`;
    const shown = spec.default || spec.shownDefault;
    // The default stays whole on one line.
    const words = [...spec.help.split(" "), ...(shown ? [`[default: ${shown}]`] : [])];
    lines.push(...helpEntry(flag, words));
    lines.push(`${"".padEnd(HELP_INDENT)}env ${spec.env}`);
  }
  lines.push(...helpEntry("  -h, --help", ["print this help"]));
  lines.push(...helpEntry("  -V, --version", ["print the version"]));
  lines.push(
    "",
    "Durations take ms, s or m (a bare number is milliseconds). Sizes are bytes, or take",
    "KiB, MiB, GiB (powers of 1024) or kB, MB, GB (powers of 1000); a bare k, M or G is refused.",
  );
  return lines.join("\n");
}

/** `flag` then `words`, wrapped between words into HELP_WIDTH columns. */
function helpEntry(flag: string, words: readonly string[]): string[] {
  const lines: string[] = [];
  let line = flag.length < HELP_INDENT ? flag.padEnd(HELP_INDENT) : flag;
  if (line.length > HELP_INDENT) {
    lines.push(line);
    line = "".padEnd(HELP_INDENT);
  }
  let empty = true;
  for (const word of words) {
    if (!empty && line.length + 1 + word.length > HELP_WIDTH) {
      lines.push(line);
      line = "".padEnd(HELP_INDENT);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

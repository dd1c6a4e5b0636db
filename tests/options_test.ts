// Tests the settings (lib/api/options.ts): defaults, command line over environment, errors, help.

import assert from "node:assert/strict";
import {
  HELP_WIDTH,
  helpText,
  OPTION_SPECS,
  type Options,
  parseCommandLine,
  parseDuration,
  parseHostPort,
  parseSize,
} from "../lib/api/options.ts";

const NO_ENV = (_: string): string | undefined => undefined;

function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

function options(args: string[], env = NO_ENV): Options {
  const result = parseCommandLine(args, env);
  assert.equal(result.kind, "run", JSON.stringify(result));
  return (result as { options: Options }).options;
}

function error(args: string[], env = NO_ENV): string {
  const result = parseCommandLine(args, env);
  assert.equal(result.kind, "error", JSON.stringify(result));
  const message = (result as { message: string }).message;
  assert.doesNotMatch(message, /[\n\r]/, "an error is one line");
  assert.ok(message.length > 0 && message.length < 200, message);
  return message;
}

const MiB = 1024 * 1024;

Deno.test("defaults apply with no arguments and no environment", () => {
  assert.deepStrictEqual(options([]), {
    handlers: undefined,
    host: "127.0.0.1",
    port: 8080,
    fifo: "./push.fifo",
    tick: 200,
    maxMessageSize: 16 * MiB,
    maxQueue: 17 * MiB,
    maxQueueTotal: 1024 * MiB,
    page: "auto",
    drainTimeout: 30_000,
    handshakeTimeout: 10_000,
    upgradeTimeout: 5_000,
    pingInterval: 30_000,
    pongTimeout: 10_000,
    closeTimeout: 5_000,
    shutdownTimeout: 5_000,
    logLevel: "info",
    compression: true,
    compressionThreshold: 512,
    compressionLevel: 3,
    allowedOrigins: [],
    subprotocols: [],
    trustedProxies: [],
    logFormat: "text",
    adminListen: undefined,
    maxConnections: undefined,
    maxConnectionsPerIp: undefined,
    handshakeRatePerIp: undefined,
    messageRate: undefined,
    messageBurst: undefined,
    stateDir: "./.push-state",
    historySize: 1000,
    historyTtl: 3_600_000,
    historyMemory: 64 * 1024 * 1024,
    historyFsync: "auto",
    maxSubscriptions: 128,
    tokenSecret: undefined,
    tokenPublicKey: undefined,
    authTimeout: 10_000,
    presenceEvents: [],
  });
});

/** One CLI value and one (different) environment value per option, with the parsed result. */
const SAMPLES: Record<string, { cli: string; cliValue: unknown; env: string; envValue: unknown }> =
  {
    host: { cli: "0.0.0.0", cliValue: "0.0.0.0", env: "::1", envValue: "::1" },
    port: { cli: "0", cliValue: 0, env: "65535", envValue: 65535 },
    fifo: { cli: "/run/a.fifo", cliValue: "/run/a.fifo", env: "b.fifo", envValue: "b.fifo" },
    stateDir: { cli: "/var/lib/p", cliValue: "/var/lib/p", env: "st", envValue: "st" },
    historySize: { cli: "5", cliValue: 5, env: "50", envValue: 50 },
    historyTtl: { cli: "2m", cliValue: 120_000, env: "30s", envValue: 30_000 },
    historyMemory: { cli: "1MiB", cliValue: MiB, env: "8MiB", envValue: 8 * MiB },
    historyFsync: { cli: "on", cliValue: "on", env: "off", envValue: "off" },
    maxSubscriptions: { cli: "16", cliValue: 16, env: "1000", envValue: 1000 },
    tokenSecret: { cli: "s1", cliValue: "s1", env: "s2", envValue: "s2" },
    tokenPublicKey: { cli: "a.pem", cliValue: "a.pem", env: "b.pem", envValue: "b.pem" },
    authTimeout: { cli: "5s", cliValue: 5000, env: "1m", envValue: 60_000 },
    tick: { cli: "1s", cliValue: 1000, env: "50", envValue: 50 },
    maxMessageSize: { cli: "64KiB", cliValue: 65536, env: "1MB", envValue: 1_000_000 },
    maxQueue: { cli: "20MiB", cliValue: 20 * MiB, env: "32MiB", envValue: 32 * MiB },
    maxQueueTotal: { cli: "2GiB", cliValue: 2048 * MiB, env: "64MiB", envValue: 64 * MiB },
    page: { cli: "on", cliValue: "on", env: "off", envValue: "off" },
    drainTimeout: { cli: "5s", cliValue: 5000, env: "2m", envValue: 120_000 },
    handshakeTimeout: { cli: "2s", cliValue: 2000, env: "1m", envValue: 60_000 },
    upgradeTimeout: { cli: "250ms", cliValue: 250, env: "1.5s", envValue: 1500 },
    pingInterval: { cli: "5s", cliValue: 5000, env: "2m", envValue: 120_000 },
    pongTimeout: { cli: "3s", cliValue: 3000, env: "700ms", envValue: 700 },
    closeTimeout: { cli: "1s", cliValue: 1000, env: "9s", envValue: 9000 },
    shutdownTimeout: { cli: "8s", cliValue: 8000, env: "100", envValue: 100 },
    logLevel: { cli: "debug", cliValue: "debug", env: "error", envValue: "error" },
    compression: { cli: "on", cliValue: true, env: "off", envValue: false },
    compressionThreshold: { cli: "1KiB", cliValue: 1024, env: "100", envValue: 100 },
    compressionLevel: { cli: "1", cliValue: 1, env: "9", envValue: 9 },
    allowedOrigins: {
      cli: "https://a.example",
      cliValue: ["https://a.example"],
      env: "https://b, https://c",
      envValue: ["https://b", "https://c"],
    },
    subprotocols: { cli: "chat", cliValue: ["chat"], env: "v2,v1", envValue: ["v2", "v1"] },
    presenceEvents: {
      cli: "room.*",
      cliValue: ["room.*"],
      env: "a,b",
      envValue: ["a", "b"],
    },
    trustedProxies: {
      cli: "10.0.0.1",
      cliValue: ["10.0.0.1"],
      env: "127.0.0.1",
      envValue: ["127.0.0.1"],
    },
    logFormat: { cli: "json", cliValue: "json", env: "text", envValue: "text" },
    adminListen: {
      cli: "127.0.0.1:0",
      cliValue: "127.0.0.1:0",
      env: "[::1]:9090",
      envValue: "[::1]:9090",
    },
    maxConnections: { cli: "10000", cliValue: 10000, env: "5", envValue: 5 },
    maxConnectionsPerIp: { cli: "100", cliValue: 100, env: "2", envValue: 2 },
    handshakeRatePerIp: { cli: "20", cliValue: 20, env: "1", envValue: 1 },
    messageRate: { cli: "50", cliValue: 50, env: "10", envValue: 10 },
    messageBurst: { cli: "100", cliValue: 100, env: "20", envValue: 20 },
  };

Deno.test("the samples cover every option", () => {
  assert.deepStrictEqual(OPTION_SPECS.map((s) => s.key).sort(), Object.keys(SAMPLES).sort());
});

for (const spec of OPTION_SPECS) {
  const sample = SAMPLES[spec.key];
  Deno.test(`--${spec.flag} sets ${spec.key}`, () => {
    assert.deepStrictEqual(options([`--${spec.flag}`, sample.cli])[spec.key], sample.cliValue);
    assert.deepStrictEqual(options([`--${spec.flag}=${sample.cli}`])[spec.key], sample.cliValue);
  });

  Deno.test(`${spec.env} sets ${spec.key}`, () => {
    assert.deepStrictEqual(
      options([], envOf({ [spec.env]: sample.env }))[spec.key],
      sample.envValue,
    );
  });

  Deno.test(`--${spec.flag} wins over ${spec.env}`, () => {
    const env = envOf({ [spec.env]: sample.env });
    assert.deepStrictEqual(options([`--${spec.flag}`, sample.cli], env)[spec.key], sample.cliValue);
  });
}

Deno.test("max-queue defaults to max-message-size + 1 MiB", () => {
  assert.equal(options(["--max-message-size", "1MiB"]).maxQueue, 2 * MiB);
  assert.equal(options([], envOf({ PUSH_MAX_MESSAGE_SIZE: "4KiB" })).maxQueue, 4096 + MiB);
});

Deno.test("list options repeat on the command line, in order", () => {
  const o = options([
    "--subprotocol",
    "v2",
    "--subprotocol",
    "v1",
    "--allowed-origin",
    "https://a",
    "--allowed-origin",
    "https://b",
  ]);
  assert.deepStrictEqual(o.subprotocols, ["v2", "v1"]);
  assert.deepStrictEqual(o.allowedOrigins, ["https://a", "https://b"]);
});

Deno.test("a list from the environment is comma-separated, trimmed, empty items dropped", () => {
  assert.deepStrictEqual(options([], envOf({ PUSH_SUBPROTOCOLS: " a , ,b," })).subprotocols, [
    "a",
    "b",
  ]);
});

Deno.test("one positional argument names the handlers file", () => {
  assert.equal(options(["--port", "1", "h.ts"]).handlers, "h.ts");
  assert.equal(options(["--", "--odd.ts"]).handlers, "--odd.ts");
});

Deno.test("more than one positional argument is an error", () => {
  assert.match(error(["a.ts", "b.ts"]), /one handlers file/);
});

for (const bad of ["-1", "65536", "http", "80.5", "", " 80"]) {
  Deno.test(`port '${bad}' is a one-line error naming the option`, () => {
    assert.match(error([`--port=${bad}`]), /^--port: .*(not a port|negative: a port)/);
    // An empty variable is unset, not a bad value (see the test below).
    if (bad !== "") {
      assert.match(
        error([], envOf({ PUSH_PORT: bad })),
        /^PUSH_PORT: .*(not a port|negative: a port)/,
      );
    }
  });
}

for (const bad of ["yes", "true", "1", "ON", ""]) {
  Deno.test(`--compression '${bad}' is a one-line error: only on or off`, () => {
    assert.match(error([`--compression=${bad}`]), /^--compression: .*not on or off/);
  });
}

for (const bad of ["0", "10", "fast", "1.5", "-1"]) {
  Deno.test(`--compression-level '${bad}' is a one-line error: zlib levels 1-9`, () => {
    assert.match(
      error([], envOf({ PUSH_COMPRESSION_LEVEL: bad })),
      /^PUSH_COMPRESSION_LEVEL: .*not a compression level/,
    );
  });
}

for (const bad of ["0", "0ms", "10h", "-5s", "soon", "1e3"]) {
  Deno.test(`duration '${bad}' is a one-line error naming the option`, () => {
    assert.match(error([`--tick=${bad}`]), /^--tick: .*(not a duration|negative: a duration)/);
    assert.match(
      error([], envOf({ PUSH_PONG_TIMEOUT: bad })),
      /^PUSH_PONG_TIMEOUT: .*(not a duration|negative: a duration)/,
    );
  });
}

for (const bad of ["0", "12TB", "big", "-1", "1.5MiB", "9999999999GiB"]) {
  Deno.test(`size '${bad}' is a one-line error naming the option`, () => {
    assert.match(
      error([`--max-message-size=${bad}`]),
      /^--max-message-size: .*(not a size|negative: a size)/,
    );
  });
}

Deno.test("an unknown log level is a one-line error listing the levels", () => {
  assert.match(error(["--log-level", "trace"]), /error, warn, info, debug/);
  assert.match(error([], envOf({ PUSH_LOG_LEVEL: "INFO" })), /^PUSH_LOG_LEVEL/);
});

Deno.test("an unknown option is a one-line error", () => {
  assert.match(error(["--bogus"]), /unknown option --bogus/);
  assert.match(error(["-x"]), /unknown option -x/);
});

Deno.test("an option without its value is a one-line error", () => {
  assert.match(error(["--port"]), /--port/);
});

Deno.test("a bad value containing a newline still gives a one-line error", () => {
  error(["--port", "80\n81"]);
  error([], envOf({ PUSH_TICK: "1s\r\nX" }));
  error(["--log-level", "info\n"]);
});

Deno.test("--help and -h ask for help; --version and -V for the version", () => {
  assert.deepStrictEqual(parseCommandLine(["--help"], NO_ENV), { kind: "help" });
  assert.deepStrictEqual(parseCommandLine(["-h", "--port", "x"], NO_ENV), { kind: "help" });
  assert.deepStrictEqual(parseCommandLine(["--version"], NO_ENV), { kind: "version" });
  assert.deepStrictEqual(parseCommandLine(["-V"], NO_ENV), { kind: "version" });
});

Deno.test("helpText lists every option, its environment variable and its default", () => {
  const text = helpText("9.9.9");
  assert.match(text, /9\.9\.9/);
  for (const spec of OPTION_SPECS) {
    assert.ok(text.includes(`--${spec.flag} `), `--${spec.flag} is listed`);
    assert.ok(text.includes(spec.env), `${spec.env} is listed`);
    if (spec.default) {
      assert.ok(text.includes(`[default: ${spec.default}]`), `${spec.flag} default`);
    }
  }
  assert.match(text, /--help/);
  assert.match(text, /--version/);
});

Deno.test("every default in the option table parses", () => {
  // The defaults go through the same parser as user input: a typo there would fail here.
  assert.equal(parseCommandLine([], NO_ENV).kind, "run");
  for (const spec of OPTION_SPECS) {
    if (spec.kind === "duration") assert.ok(parseDuration(spec.default), spec.flag);
    if (spec.kind === "size" && spec.default) assert.ok(parseSize(spec.default), spec.flag);
  }
});

Deno.test("parseDuration and parseSize accept their documented forms", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("75"), 75);
  assert.equal(parseSize("65536"), 65536);
  assert.equal(parseSize("64KiB"), 65536);
  assert.equal(parseSize("16MiB"), 16 * MiB);
  assert.equal(parseSize("1GiB"), 1024 * MiB);
});

Deno.test("sizes: KiB, MiB, GiB are powers of 1024; kB, MB, GB powers of 1000 (any case)", () => {
  const cases: [string, number][] = [
    ["1KiB", 1024],
    ["1MiB", 1024 ** 2],
    ["1GiB", 1024 ** 3],
    ["1kB", 1000],
    ["1KB", 1000],
    ["1MB", 1000 ** 2],
    ["1GB", 1000 ** 3],
    ["64kb", 64_000],
    ["10 MB", 10_000_000],
    ["512B", 512],
  ];
  for (const [raw, bytes] of cases) {
    assert.equal(parseSize(raw), bytes, raw);
    assert.equal(options(["--max-message-size", raw, "--max-queue", "2GiB"]).maxMessageSize, bytes);
  }
});

for (const bare of ["4k", "16M", "1G", "2 g"]) {
  Deno.test(`size '${bare}' is refused as ambiguous, naming both readings`, () => {
    assert.equal(parseSize(bare), undefined);
    const message = error(["--max-message-size", bare]);
    assert.match(
      message,
      /^--max-message-size: .* is ambiguous: write \d+[KMG]iB .* or \d+[kMG]B /,
    );
  });
}

Deno.test("a negative value after a space says it is negative, not 'ambiguous' (--port -1)", () => {
  assert.match(error(["--port", "-1"]), /^--port: '-1' is negative: a port is a number from 0/);
  assert.match(error(["--tick", "-5s"]), /^--tick: '-5s' is negative: a duration is positive/);
  assert.match(error(["--max-queue", "-1"]), /^--max-queue: '-1' is negative/);
  assert.match(error(["--log-level", "-v"]), /^--log-level: '-v' is not a log level/);
  assert.doesNotMatch(error(["--port", "-1"]), /ambiguous/);
});

Deno.test("a string option takes a value that starts with '-' (--fifo -odd)", () => {
  assert.equal(options(["--fifo", "-odd"]).fifo, "-odd");
});

Deno.test("an option followed by another option says the value is missing", () => {
  assert.equal(
    error(["--port", "--help"]),
    "--port needs a value (got the option '--help' instead)",
  );
  assert.equal(error(["--tick", "-h"]), "--tick needs a value (got the option '-h' instead)");
  assert.equal(error(["--port"]), "--port needs a value");
});

Deno.test("after '--' nothing is joined: '--port -1' there is a positional argument", () => {
  assert.match(error(["--", "--port", "-1"]), /one handlers file/);
});

Deno.test("PUSH_HANDLERS names the handlers file; the positional argument wins; empty is unset", () => {
  assert.equal(options([], envOf({ PUSH_HANDLERS: "echo" })).handlers, "echo");
  assert.equal(options(["mine.ts"], envOf({ PUSH_HANDLERS: "echo" })).handlers, "mine.ts");
  assert.equal(options([], envOf({ PUSH_HANDLERS: "" })).handlers, undefined);
  assert.equal(options([]).handlers, undefined);
});

Deno.test("--help fits in 100 columns and shows every default as [default: …]", () => {
  const text = helpText("9.9.9");
  for (const line of text.split("\n")) {
    assert.ok(line.length <= HELP_WIDTH, `${line.length} columns: ${line}`);
    assert.equal(line, line.trimEnd(), `no trailing space: '${line}'`);
  }
  assert.doesNotMatch(text, /\(default/);
  assert.match(text, /\[default: max-message-size \+ 1MiB\]/);
  assert.match(text, /\[default: any\]/);
  assert.match(text, /PUSH_HANDLERS/);
});

Deno.test("an empty PUSH_* variable counts as unset (systemd Environment=NAME=)", () => {
  const parsed = parseCommandLine([], (name) => name === "PUSH_PORT" ? "" : undefined);
  assert.equal(parsed.kind, "run");
  if (parsed.kind === "run") assert.equal(parsed.options.port, 8080);
});

Deno.test("--max-queue below --max-message-size is an error: one largest message would close every client", () => {
  assert.match(
    error(["--max-queue", "64KiB"]),
    /--max-queue \(65536\) must be at least --max-message-size/,
  );
  assert.equal(options(["--max-queue", "64KiB", "--max-message-size", "64KiB"]).maxQueue, 65536);
});

Deno.test("limit options take positive whole numbers and say so in one line otherwise", () => {
  assert.match(
    error(["--max-connections", "0"]),
    /--max-connections: '0' is not a positive whole number/,
  );
  assert.match(
    error(["--message-rate", "1.5"]),
    /--message-rate: '1.5' is not a positive whole number/,
  );
  assert.match(
    error([], envOf({ PUSH_MAX_CONNECTIONS_PER_IP: "-1" })),
    /PUSH_MAX_CONNECTIONS_PER_IP/,
  );
});

Deno.test("--log-format accepts text or json only", () => {
  assert.match(error(["--log-format", "xml"]), /'xml' is not a log format \(text, json\)/);
});

Deno.test("--admin-listen takes host:port, with brackets around an IPv6 address", () => {
  assert.equal(options(["--admin-listen", "localhost:9090"]).adminListen, "localhost:9090");
  assert.match(error(["--admin-listen", "9090"]), /'9090' is not host:port/);
  assert.match(error(["--admin-listen", "::1:9090"]), /is not host:port/);
  assert.match(error(["--admin-listen", "127.0.0.1:70000"]), /is not host:port/);
  assert.deepStrictEqual(parseHostPort("[::1]:0"), { hostname: "::1", port: 0 });
});

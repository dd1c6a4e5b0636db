// The command line of main.ts as a user meets it: every mistake is one clear line on stderr
// with a non-zero exit, --help and --version, the PUSH_* environment, and the permissions.

import assert from "node:assert/strict";
import { RawClient } from "./support/raw_client.ts";
import { startServer } from "./support/server_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;
const decoder = new TextDecoder();
const RUN_BOUND_MS = 15_000;

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs main.ts to completion (killed after a bound: a CLI mistake must end the process). */
async function runCli(
  args: string[],
  options: { permissions?: string[]; env?: Record<string, string>; cwd?: string } = {},
): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(options.permissions ?? ["--allow-net", "--allow-read"]),
      MAIN,
      ...args,
    ],
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), RUN_BOUND_MS);
  const out = await child.output();
  clearTimeout(timer);
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(out.success, "mkfifo");
}

/**
 * One line on stderr, no stack trace, and the exit status the README documents: 2 for a
 * configuration error (the default), 1 for a failure that a restart may cure. Returns the line.
 */
function assertOneLineError(r: CliResult, pattern: RegExp, code = 2): string {
  assert.equal(r.code, code, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  assert.doesNotMatch(r.stderr, /Uncaught|error: Uncaught/, "no uncaught error");
  assert.match(lines[0], pattern);
  return lines[0];
}

Deno.test("an unknown option is one line naming it and pointing at --help", async () => {
  const r = await runCli(["--no-such-option"]);
  assertOneLineError(r, /--no-such-option.*--help/);
});

Deno.test("a bad port is one line naming the option and the value", async () => {
  assertOneLineError(await runCli(["--port", "70000"]), /--port.*70000/);
  assertOneLineError(await runCli(["--port", "http"]), /--port.*http/);
});

Deno.test("a bad duration is one line naming the option and the value", async () => {
  assertOneLineError(await runCli(["--ping-interval", "5 parsecs"]), /--ping-interval.*5 parsecs/);
  assertOneLineError(await runCli(["--close-timeout", "0"]), /--close-timeout/);
});

Deno.test("a negative value after a space says what is wrong with it, not 'ambiguous'", async () => {
  const port = assertOneLineError(await runCli(["--port", "-1"]), /^push-server: --port: '-1' is/);
  assert.match(port, /negative/);
  const tick = assertOneLineError(
    await runCli(["--tick", "-5s"]),
    /^push-server: --tick: '-5s' is/,
  );
  assert.match(tick, /negative/);
  assert.doesNotMatch(port + tick, /ambiguous/);
});

Deno.test("a bare size unit (16M) is refused, naming the binary and decimal spellings", async () => {
  assertOneLineError(
    await runCli(["--max-message-size", "16M"]),
    /--max-message-size: '16M' is ambiguous: write 16MiB .* or 16MB /,
  );
});

Deno.test("a directory given as the FIFO gets safe advice: a path inside it, never 'remove'", () =>
  withTempDir(async (dir) => {
    const line = assertOneLineError(
      await runCli(["--port", "0", "--fifo", dir]),
      /is a directory, not a FIFO/,
    );
    assert.ok(line.includes(`--fifo ${dir}/in.fifo`), line);
    assert.doesNotMatch(line, /\b(remove|rm|delete)\b/i);
    assert.equal((await Deno.stat(dir)).isDirectory, true, "the directory is untouched");
  }));

Deno.test("a plain file given as the FIFO is not to be removed either", () =>
  withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/data`, "keep me");
    const line = assertOneLineError(
      await runCli(["--port", "0", "--fifo", `${dir}/data`]),
      /data exists but is not a FIFO/,
    );
    assert.doesNotMatch(line, /\b(remove|rm|delete)\b/i);
    assert.equal(await Deno.readTextFile(`${dir}/data`), "keep me");
  }));

Deno.test("without --allow-net: one line naming --allow-net, exit 2 (no prompt)", () =>
  withTempDir(async (dir) => {
    await mkfifo(`${dir}/in.fifo`);
    const r = await runCli(["--port", "0", "--fifo", `${dir}/in.fifo`], {
      permissions: ["--allow-read"],
    });
    assertOneLineError(r, /^push-server: network access is not granted: .*--allow-net/);
  }));

Deno.test("without --allow-read: one line naming --allow-read, exit 2 (no prompt)", () =>
  withTempDir(async (dir) => {
    await mkfifo(`${dir}/in.fifo`);
    const r = await runCli(["--port", "0", "--fifo", `${dir}/in.fifo`], {
      permissions: ["--allow-net"],
    });
    assertOneLineError(r, /^push-server: read access is not granted: .*--allow-read/);
  }));

Deno.test("a port already in use: one line, exit 1 so that systemd's Restart=on-failure retries", () =>
  withTempDir(async (dir) => {
    await mkfifo(`${dir}/in.fifo`);
    using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = busy.addr.port;
    const r = await runCli(["--port", String(port), "--fifo", `${dir}/in.fifo`]);
    assertOneLineError(
      r,
      new RegExp(`^push-server: cannot listen on 127\\.0\\.0\\.1:${port}: .*already in use`),
      1,
    );
  }));

Deno.test("a missing FIFO without --allow-run=mkfifo is one line naming mkfifo", () =>
  withTempDir(async (dir) => {
    const r = await runCli(["--port", "0", "--fifo", `${dir}/missing.fifo`]);
    assertOneLineError(r, /missing\.fifo.*mkfifo/);
    assert.equal(await exists(`${dir}/missing.fifo`), false, "nothing was created");
  }));

Deno.test("a path that is not a FIFO is one line saying so", () =>
  withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/plain`, "");
    const r = await runCli(["--port", "0", "--fifo", `${dir}/plain`]);
    assertOneLineError(r, /plain.*not a FIFO/);
  }));

Deno.test("a missing handlers file is one line naming it", () =>
  withTempDir(async (dir) => {
    await mkfifo(`${dir}/in.fifo`);
    const r = await runCli(["--port", "0", "--fifo", `${dir}/in.fifo`, `${dir}/nope.ts`]);
    assertOneLineError(r, /nope\.ts.*not found/);
  }));

Deno.test("a handlers file with a syntax error is one line: file:line:column and the message", () =>
  withTempDir(async (dir) => {
    await mkfifo(`${dir}/in.fifo`);
    await Deno.writeTextFile(`${dir}/broken.ts`, "export function text( {\n");
    const r = await runCli(["--port", "0", "--fifo", `${dir}/in.fifo`, `${dir}/broken.ts`]);
    const line = assertOneLineError(r, /broken\.ts:1:\d+: syntax error: \S/);
    assert.doesNotMatch(line, /TypeError|SyntaxError:/, "no doubled prefix");
  }));

Deno.test("a handlers file exporting text = 5 is one line saying it is not a function", () =>
  withTempDir(async (dir) => {
    await mkfifo(`${dir}/in.fifo`);
    await Deno.writeTextFile(`${dir}/five.ts`, "export const text = 5;\n");
    const r = await runCli(["--port", "0", "--fifo", `${dir}/in.fifo`, `${dir}/five.ts`]);
    assertOneLineError(r, /five\.ts.*'text'.*a number, not a function/);
  }));

Deno.test("two handlers files are one line saying only one is taken", async () => {
  assertOneLineError(await runCli(["a.ts", "b.ts"]), /one handlers file/);
});

/** The options and defaults the README documents. */
const DOCUMENTED: [string, string | null][] = [
  ["--host", "127.0.0.1"],
  ["--port", "8080"],
  ["--fifo", "./push.fifo"],
  ["--tick", "200ms"],
  ["--max-message-size", "16MiB"],
  ["--max-queue", "max-message-size + 1MiB"],
  ["--handshake-timeout", "10s"],
  ["--upgrade-timeout", "5s"],
  ["--ping-interval", "30s"],
  ["--pong-timeout", "10s"],
  ["--close-timeout", "5s"],
  ["--shutdown-timeout", "5s"],
  ["--log-level", "info"],
  ["--allowed-origin", null],
  ["--subprotocol", null],
  ["--trusted-proxy", null],
];

Deno.test("--help lists every option with its default and exits 0", async () => {
  const r = await runCli(["--help"]);
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  const lines = r.stdout.split("\n");
  for (const [flag, def] of DOCUMENTED) {
    const start = lines.findIndex((l) => l.trimStart().startsWith(`${flag} `));
    assert.ok(start >= 0, `--help lists ${flag}`);
    // An entry runs from its flag to its "env PUSH_…" line.
    const end = lines.findIndex((l, i) => i > start && /^\s+env PUSH_/.test(l));
    const entry = lines.slice(start, end + 1).join(" ");
    if (def) {
      assert.ok(entry.includes(`[default: ${def}]`), `--help: ${flag} [default: ${def}]: ${entry}`);
    }
  }
  assert.match(r.stdout, /--version/);
});

Deno.test("--help has no line over 100 columns and one style of default", async () => {
  const r = await runCli(["--help"]);
  for (const line of r.stdout.split("\n")) {
    assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
  }
  assert.doesNotMatch(r.stdout, /\(default/);
});

Deno.test("--version prints the version and exits 0", async () => {
  const r = await runCli(["--version"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^push-server \d+\.\d+\.\d+\n$/);
});

Deno.test("with --allow-env, PUSH_* variables are read", async () => {
  const r = await runCli([], {
    permissions: ["--allow-net", "--allow-read", "--allow-env"],
    env: { PUSH_PING_INTERVAL: "soon" },
  });
  assertOneLineError(r, /PUSH_PING_INTERVAL.*soon/);

  const server = await startServer({
    permissions: ["--allow-net", "--allow-read", "--allow-env"],
    env: { PUSH_HANDSHAKE_TIMEOUT: "300ms" },
  });
  try {
    const client = await RawClient.connect(server.port);
    try {
      assert.equal(await client.closedWithin(3000), true, "PUSH_HANDSHAKE_TIMEOUT applied");
    } finally {
      client.close();
    }
  } finally {
    await server.stop();
  }
});

Deno.test("with --allow-env, the command line wins over PUSH_* variables", async () => {
  // startServer passes --port 0 and --log-level debug on the command line.
  const server = await startServer({
    permissions: ["--allow-net", "--allow-read", "--allow-env"],
    env: { PUSH_PORT: "1", PUSH_LOG_LEVEL: "nonsense" },
  });
  try {
    assert.notEqual(server.port, 1);
  } finally {
    await server.stop();
  }
});

Deno.test("without --allow-env, PUSH_* variables are ignored and nothing fails", async () => {
  const server = await startServer({
    env: {
      PUSH_PING_INTERVAL: "soon",
      PUSH_MAX_MESSAGE_SIZE: "huge",
      PUSH_HANDLERS: "no-such-handlers.ts",
    },
  });
  try {
    assert.doesNotMatch(server.stderr(), /PUSH_|env/i);
  } finally {
    await server.stop();
  }
});

Deno.test("--allow-net --allow-read alone is enough to serve FIFO lines", async () => {
  const server = await startServer({ permissions: ["--allow-net", "--allow-read"] });
  const client = await RawClient.open(server.port, { roundTrip: true });
  try {
    await server.writeFifo("granted enough\n");
    const frame = await client.readFrame();
    assert.equal(decoder.decode(frame.payload), "granted enough");
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("the start task's permissions create a missing FIFO", async () => {
  const config = JSON.parse(await Deno.readTextFile(DENO_JSON));
  const start: string = config.tasks.start;
  const permissions = start.split(/\s+/).filter((w) => w.startsWith("--allow-"));
  assert.ok(permissions.includes("--allow-run=mkfifo"), `start task: ${start}`);
  const server = await startServer({ permissions, createFifo: false });
  try {
    await server.waitForLog(/created FIFO/);
    assert.equal((await Deno.stat(server.fifo)).isFifo, true);
  } finally {
    await server.stop();
  }
});

Deno.test("PUSH_HANDLERS names the handlers file under the start task's permissions", async () => {
  const config = JSON.parse(await Deno.readTextFile(DENO_JSON));
  const permissions = (config.tasks.start as string).split(/\s+/).filter((w) =>
    w.startsWith("--allow-")
  );
  const server = await startServer({ permissions, env: { PUSH_HANDLERS: "echo" } });
  const client = await RawClient.open(server.port);
  try {
    await client.sendFrame({ opcode: 0x1, payload: "echoed because PUSH_HANDLERS=echo" });
    const frame = await client.readFrame();
    assert.equal(decoder.decode(frame.payload), "echoed because PUSH_HANDLERS=echo");
  } finally {
    client.close();
    await server.stop();
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

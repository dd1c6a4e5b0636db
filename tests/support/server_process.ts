// Test support: starts the real push-server process (main.ts) on a free port with its own
// FIFO in a temporary directory, and stops it by its PID.

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

export interface ServerProcess {
  readonly port: number;
  readonly fifo: string;
  readonly dir: string;
  readonly process: Deno.ChildProcess;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** Resolves once stderr contains `text` (or rejects after `timeoutMs`). */
  waitForLog(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves once stderr has `count` matches of `pattern` (or rejects after `timeoutMs`). */
  waitForCount(pattern: RegExp, count: number, timeoutMs?: number): Promise<void>;
  /** How many times stderr matches `pattern` so far. */
  countLog(pattern: RegExp): number;
  /** Writes `data` to the FIFO from another process (as a web application would). */
  writeFifo(data: string | Uint8Array): Promise<void>;
  /** Sends a signal and waits for the exit status. */
  signal(signal: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Kills the process (if still running) and removes the temporary directory. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra command-line arguments (a handlers file goes here). */
  readonly args?: readonly string[];
  /** Deno permission flags; the default is exactly what normal operation needs. */
  readonly permissions?: readonly string[];
  readonly env?: Record<string, string>;
  /** Create the FIFO before start (default true). */
  readonly createFifo?: boolean;
  readonly logLevel?: string;
  /** Runs the server under `prlimit --nofile=N:N` (a low descriptor limit). */
  readonly maxOpenFiles?: number;
}

/** Starts main.ts and waits until it logs the port it listens on. */
export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  const dir = await Deno.makeTempDir({ prefix: "push-test-" });
  const fifo = `${dir}/push.fifo`;
  if (options.createFifo ?? true) await run("mkfifo", [fifo]);
  const permissions = options.permissions ?? ["--allow-net", "--allow-read"];
  const limit = options.maxOpenFiles === undefined
    ? []
    : [`--nofile=${options.maxOpenFiles}:${options.maxOpenFiles}`, Deno.execPath()];
  // prlimit execs the server, so the child's PID is the server's.
  const cmd = new Deno.Command(limit.length ? "prlimit" : Deno.execPath(), {
    args: [
      ...limit,
      "run",
      "--quiet",
      ...permissions,
      MAIN,
      "--port",
      "0",
      "--fifo",
      fifo,
      "--log-level",
      options.logLevel ?? "debug",
      // Each server keeps its channel history apart (used only where writing is granted).
      ...(options.args?.includes("--state-dir") ? [] : ["--state-dir", `${dir}/state`]),
      ...(options.args ?? []),
    ],
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const process = cmd.spawn();
  let text = "";
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      for (const w of waiters) w();
    }
  };
  const pumps = [pump(process.stderr), pump(process.stdout)];
  const status = process.status;
  let exited = false;
  status.then(() => {
    exited = true;
    for (const w of waiters) w();
  });

  const countLog = (pattern: RegExp) =>
    [...text.matchAll(new RegExp(pattern.source, pattern.flags.replace("g", "") + "g"))].length;
  const waitUntil = (
    matches: () => boolean,
    pattern: string | RegExp,
    timeoutMs: number,
  ) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`server did not log ${pattern} within ${timeoutMs} ms; log:\n${text}`));
      }, timeoutMs);
      const check = () => {
        if (matches()) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        } else if (exited) {
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`server exited before logging ${pattern}; log:\n${text}`));
        }
      };
      waiters.add(check);
      check();
    });
  const waitForLog = (pattern: string | RegExp, timeoutMs = 10_000) =>
    waitUntil(
      () => typeof pattern === "string" ? text.includes(pattern) : pattern.test(text),
      pattern,
      timeoutMs,
    );

  try {
    await waitForLog(/listening on [^\s]+:\d+/);
  } catch (e) {
    try {
      process.kill("SIGKILL");
    } catch { /* gone */ }
    await status;
    await Promise.all(pumps);
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const port = Number(/listening on [^\s]+:(\d+)/.exec(text)![1]);

  return {
    port,
    fifo,
    dir,
    process,
    stderr: () => text,
    waitForLog,
    waitForCount: (pattern, count, timeoutMs = 10_000) =>
      waitUntil(() => countLog(pattern) >= count, `${count} × ${pattern}`, timeoutMs),
    countLog,
    writeFifo: (data) => writeFifo(fifo, data),
    async signal(signal) {
      process.kill(signal);
      const s = await status;
      await Promise.all(pumps);
      return s;
    },
    async stop() {
      if (!exited) {
        try {
          process.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await status;
      await Promise.all(pumps);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Writes to a FIFO from a separate process, as a web application would. */
export async function writeFifo(fifo: string, data: string | Uint8Array): Promise<void> {
  const child = new Deno.Command("sh", {
    args: ["-c", 'cat > "$1"', "sh", fifo],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`writing ${fifo} failed: ${decoder.decode(out.stderr)}`);
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
}

/** Runs `body` against a fresh server started with `args`, and stops the server afterwards. */
export async function withServer(
  args: readonly string[],
  body: (server: ServerProcess) => Promise<void>,
): Promise<void> {
  const server = await startServer({ args });
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

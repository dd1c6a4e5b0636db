// The FIFO's start-up guards and its reader's health: a FIFO the server cannot read is a
// start-up error naming who owns it and who the server is; a second server on the same FIFO
// refuses to start naming the first one's PID; a FIFO that cannot be opened later shows as
// `unreadable` and is retried with backoff; a line written between the start-up check and the
// reader's first open is delivered.

import assert from "node:assert/strict";
import { closeWs, connectWs } from "./support/ws_client.ts";
import { startServer } from "./support/server_process.ts";
import { toolFor } from "./support/tools.ts";
import { tryWriteFifo } from "./support/push_v1.ts";
import { fifoLockHolder, unreadableMessage } from "../lib/sources/fifo_guard.ts";
import { FifoReader, prepareFifo } from "../lib/sources/fifo.ts";
import type { Logger } from "../lib/api/handlers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();
const EXIT_USAGE = 2;
const NOBODY = 65534;
const isRoot = Deno.uid() === 0;
// Root reads any file whatever its mode, so an unreadable FIFO needs another user: setpriv
// (util-linux) runs the server as nobody. Other users get a FIFO of mode 000 instead.
const setpriv = isRoot
  ? toolFor("setpriv", "unreadable FIFO at start-up, run as root (needs util-linux's setpriv)")
  : null;

async function mkfifo(path: string, mode: number): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(out.success, `mkfifo ${path}`);
  await Deno.chmod(path, mode);
}

const DEFAULT_PERMISSIONS = ["--allow-net", "--allow-read"];
/** What lets the server name its user and groups in a FIFO permission error. */
const SYS_IDS = "--allow-sys=uid,gid";

/** Runs main.ts (optionally as nobody) on `fifo` and port 0 until it exits. */
async function runToExit(
  fifo: string,
  options: { asNobody?: boolean; permissions?: string[] } = {},
): Promise<Deno.CommandOutput> {
  const permissions = options.permissions ?? DEFAULT_PERMISSIONS;
  const asNobody = options.asNobody ?? false;
  const server = [Deno.execPath(), "run", "--quiet", ...permissions, MAIN];
  const prefix = asNobody
    ? [setpriv!, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"]
    : [];
  const [command, ...args] = [...prefix, ...server, "--port", "0", "--fifo", fifo];
  return await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test({
  name: "a FIFO the server cannot read stops start-up with one line naming owner, group, mode " +
    "and the server's user (exit 2)",
  ignore: isRoot && setpriv === null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "push-guard-" });
    try {
      await Deno.chmod(dir, 0o755); // nobody must reach the FIFO to be refused by its mode
      const fifo = `${dir}/in.fifo`;
      await mkfifo(fifo, isRoot ? 0o600 : 0o000);
      const out = await runToExit(fifo, {
        asNobody: isRoot,
        permissions: [...DEFAULT_PERMISSIONS, SYS_IDS],
      });
      const stderr = decoder.decode(out.stderr);
      assert.equal(out.code, EXIT_USAGE, stderr);
      assert.equal(stderr.split("\n").filter((l) => l !== "").length, 1, stderr);
      const escaped = fifo.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      assert.match(
        stderr,
        new RegExp(
          `^push-server: cannot read FIFO ${escaped} \\(owner \\S+ \\(\\d+\\), group \\S+ ` +
            `\\(\\d+\\), mode 0${
              isRoot ? "600" : "000"
            }\\): the server runs as user .+, group .+, ` +
            `supplementary groups .+\n$`,
        ),
      );
      if (isRoot) {
        assert.match(
          stderr,
          new RegExp(
            `runs as user \\S+ \\(${NOBODY}\\), group \\S+ \\(${NOBODY}\\), ` +
              `supplementary groups none;`,
          ),
        );
      }
      assert.doesNotMatch(stderr, /listening/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "unreadableMessage names ids without a name by number and lists every group",
  fn() {
    const info = { mode: 0o10640, uid: 4_000_001, gid: 4_000_002 } as Deno.FileInfo;
    const message = unreadableMessage("/run/x.fifo", {
      info,
      identity: { uid: 4_000_003, gid: 4_000_004, groups: [4_000_005, 4_000_006] },
    });
    assert.equal(
      message,
      "cannot read FIFO /run/x.fifo (owner 4000001, group 4000002, mode 0640): the server " +
        "runs as user 4000003, group 4000004, supplementary groups 4000005, 4000006; give the " +
        "FIFO's group read access (chmod g+r) and add the server's user to that group " +
        "(SupplementaryGroups= under systemd)",
    );
    // Without --allow-sys=uid,gid the server cannot see who it is, and says what would show it.
    assert.match(
      unreadableMessage("/run/x.fifo", { info, identity: null }),
      /: the server's user and groups are hidden from it \(grant --allow-sys=uid,gid to see them here\); /,
    );
  },
});

const ALREADY_READ = /^push-server: FIFO \S+ is already being read by another process/;

Deno.test("a second server on a FIFO the first has read refuses to start: with /proc readable it names the first's PID, with --allow-write it still refuses (exit 2)", async () => {
  const first = await startServer();
  try {
    // Once a line has gone through, the first server holds the FIFO's lock.
    const client = await connectWs(first.port);
    await first.waitForLog(/connection \d+ open/);
    await first.writeFifo("one\n");
    assert.equal(await client.next(), "one");
    assert.equal(fifoLockHolder(await Deno.stat(first.fifo)), first.process.pid);

    // Deno shows /proc/locks only with --allow-all.
    let out = await runToExit(first.fifo, { permissions: ["--allow-all"] });
    let stderr = decoder.decode(out.stderr);
    assert.equal(out.code, EXIT_USAGE, stderr);
    assert.match(stderr, ALREADY_READ);
    assert.match(stderr, new RegExp(`another process \\(PID ${first.process.pid}\\), `));
    assert.equal(stderr.split("\n").length, 2, stderr);

    // With write access to the FIFO alone, the lock is tested directly; fuser names the holder.
    out = await runToExit(first.fifo, {
      permissions: [...DEFAULT_PERMISSIONS, `--allow-write=${first.fifo}`],
    });
    stderr = decoder.decode(out.stderr);
    assert.equal(out.code, EXIT_USAGE, stderr);
    assert.match(stderr, ALREADY_READ);
    assert.match(
      stderr,
      /holding its lock, most likely another push-server \(fuser -v \S+ names it\)/,
    );

    // The first server still gets every line.
    await first.writeFifo("two\n");
    assert.equal(await client.next(), "two");
    await closeWs(client);
  } finally {
    await first.stop();
  }
});

Deno.test("with only --allow-net --allow-read, a second server stops with exit 2 at the next line, and the first one gets it", async () => {
  const first = await startServer();
  const client = await connectWs(first.port);
  let second: Deno.ChildProcess | null = null;
  try {
    await first.waitForLog(/connection \d+ open/);
    await first.writeFifo("one\n");
    assert.equal(await client.next(), "one");
    second = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...DEFAULT_PERMISSIONS, MAIN, "--port", "0", "--fifo", first.fifo],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const secondOut = second.output();
    await blockedOnFifo(second.pid);
    await first.writeFifo("two\n");
    const out = await secondOut;
    const stderr = decoder.decode(out.stderr);
    assert.equal(out.code, EXIT_USAGE, stderr);
    assert.match(stderr, /^error: FIFO \S+ is already being read by another process/m);
    assert.equal(await client.next(), "two");
  } finally {
    try {
      second?.kill("SIGKILL");
    } catch { /* already exited */ }
    await second?.status;
    await closeWs(client);
    await first.stop();
  }
});

/** Waits until a thread of `pid` blocks opening a FIFO without a writer (wchan on Linux). */
async function blockedOnFifo(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const wchan = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/wchan`);
        if (wchan === "wait_for_partner") return;
      } catch { /* the thread ended */ }
    }
    if (Date.now() > deadline) throw new Error(`process ${pid} never waited on the FIFO`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("two servers started before any writer: at the first line one stops with exit 2 before reading, the other holds the lock", async () => {
  const a = await startServer();
  const second = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net", "--allow-read", MAIN, "--port", "0"]
      .concat(["--fifo", a.fifo, "--log-level", "debug"]),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const secondOut = second.output();
  try {
    await blockedOnFifo(a.process.pid);
    await blockedOnFifo(second.pid);
    const exits = Promise.race([
      a.process.status.then((s) => ({ loser: "first", code: s.code })),
      secondOut.then((s) => ({ loser: "second", code: s.code })),
    ]);
    await a.writeFifo("line\n");
    const { loser, code } = await exits;
    assert.equal(code, EXIT_USAGE);
    const winner = loser === "first" ? second.pid : a.process.pid;
    const log = loser === "first" ? a.stderr() : decoder.decode((await secondOut).stderr);
    assert.match(log, /error: FIFO \S+ is already being read by another process/);
    assert.equal(fifoLockHolder(await Deno.stat(a.fifo)), winner);
  } finally {
    try {
      second.kill("SIGKILL");
    } catch { /* already exited */ }
    await secondOut;
    await a.stop();
  }
});

function recordingLog(): Logger & { errors: string[]; next(): Promise<string> } {
  const errors: string[] = [];
  let wake: (() => void) | null = null;
  return {
    errors,
    error(m) {
      errors.push(m);
      wake?.();
    },
    warn() {},
    info() {},
    debug() {},
    async next() {
      const seen = errors.length;
      while (errors.length === seen) await new Promise<void>((r) => wake = r);
      return errors[errors.length - 1];
    },
  };
}

Deno.test("a FIFO that cannot be opened shows as unreadable with its error, retried with backoff, then open", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-state-" });
  const fifo = `${dir}/in.fifo`;
  const log = recordingLog();
  const batches: string[][] = [];
  const got = Promise.withResolvers<void>();
  const reader = new FifoReader(fifo, {
    maxLineBytes: 1024,
    log,
    onBatch(lines) {
      batches.push(lines);
      got.resolve();
    },
  });
  assert.deepEqual(reader.state, { state: "waiting", lastError: null });
  const failed = log.next();
  const running = reader.run();
  try {
    assert.match(await failed, /^cannot open FIFO .*NotFound.*; retrying in 1 s$/);
    assert.equal(reader.state.state, "unreadable");
    assert.match(reader.state.lastError ?? "", /^cannot open FIFO .*NotFound/);
    assert.match(await log.next(), /; retrying in 2 s$/); // the next wait doubles
    await mkfifo(fifo, 0o600);
    const writer = new Deno.Command("sh", { args: ["-c", 'echo hi > "$1"', "sh", fifo] })
      .output();
    await got.promise;
    assert.deepEqual(batches, [["hi"]]);
    assert.deepEqual(reader.state, { state: "open", lastError: null });
    await writer;
  } finally {
    await reader.stop();
    await running;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines a writer leaves between the start-up check and the reader's first open are delivered, not stuck in the pipe", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-state-" });
  const fifo = `${dir}/in.fifo`;
  await mkfifo(fifo, 0o600);
  const log = recordingLog();
  assert.equal(await prepareFifo(fifo, log), null);
  // The check's descriptor is a reader, so a non-blocking writer gets in, writes and leaves
  // before the reader's blocking open is waiting: nothing would wake that open.
  assert.ok(await tryWriteFifo(fifo, "one\ntwo"), "the writer found a reader");
  const delivered: string[] = [];
  const both = Promise.withResolvers<void>();
  const reader = new FifoReader(fifo, {
    maxLineBytes: 1024,
    log,
    onBatch(lines) {
      delivered.push(...lines);
      if (delivered.length >= 2) both.resolve();
    },
  });
  const running = reader.run();
  const timeout = setTimeout(() => both.reject(new Error(`delivered only ${delivered}`)), 5_000);
  try {
    await both.promise;
    // The last line had no newline: its writer has gone, so it is complete.
    assert.deepEqual(delivered, ["one", "two"]);
    assert.deepEqual(log.errors, []);
  } finally {
    clearTimeout(timeout);
    await reader.stop({ drainMs: 0 });
    await running;
    await Deno.remove(dir, { recursive: true });
  }
});

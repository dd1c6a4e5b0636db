// The single executable: `deno task compile` (lib/api/compile.ts) builds a binary that
// serves the default broadcast, the embedded browser client (/push-client.js), the built-in
// examples, and an operator's handlers file embedded with --include, and that may write channel
// history in its default state directory. Compiling needs a denort binary: these tests run when
// DENORT_BIN points at one and say why they skipped otherwise; without denort the task says so
// in one line.

import assert from "node:assert/strict";
import { COMPILE_FLAGS, denortProblem, denortSource } from "../lib/api/compile.ts";
import { parseCommandLine } from "../lib/api/options.ts";
import { HISTORY_FILE } from "../lib/store/history_store.ts";
import { closeWs, connectWs } from "./support/ws_client.ts";
import { grantPath, writeGrants } from "./support/permissions.ts";
import { reportSkip } from "./support/tools.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const COMPILE_SCRIPT = `${ROOT}lib/api/compile.ts`;
/** The browser client that `--include client/` embeds and the server offers at CLIENT_PATH. */
const CLIENT_SOURCE = `${ROOT}client/push-client.js`;
const CLIENT_PATH = "/push-client.js";
/** The one line the server logs at start when it cannot write its state directory. */
const MEMORY_ONLY = "history kept in memory only";
const denort = Deno.env.get("DENORT_BIN");
const skipReason = denort
  ? null
  : "DENORT_BIN is not set: deno compile needs a denort binary, which this machine cannot " +
    "download (set DENORT_BIN=/path/to/denort to run these tests)";
if (skipReason) reportSkip("compiled-executable test", skipReason);

/** The words of a deno.json task, split as the shell would (none of them is quoted). */
async function taskWords(name: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  return (config.tasks[name] as string).split(/\s+/);
}

/** The permission flags of `deno task compile` (which runs lib/api/compile.ts), from deno.json. */
async function taskPermissions(): Promise<string[]> {
  const words = await taskWords("compile");
  assert.ok(words.includes("lib/api/compile.ts"), "the compile task runs lib/api/compile.ts");
  return words.filter((w) => w.startsWith("--allow-"));
}

/** The --state-dir a server uses when none is given. */
function defaultStateDir(): string {
  const parsed = parseCommandLine([], () => undefined);
  if (parsed.kind !== "run") throw new Error(`no defaults: ${JSON.stringify(parsed)}`);
  return parsed.options.stateDir;
}

Deno.test("the compile task embeds client/ and grants write to the default --state-dir, as start does", async () => {
  // compile.ts passes COMPILE_FLAGS to deno compile; the executable keeps these grants.
  const included = COMPILE_FLAGS.flatMap((flag, i) =>
    flag === "--include" ? [COMPILE_FLAGS[i + 1]] : []
  );
  assert.ok(included.map(grantPath).includes("client"), `--include client/: ${included}`);
  const stateDir = grantPath(defaultStateDir());
  assert.ok(writeGrants(COMPILE_FLAGS).includes(stateDir), `compile: ${COMPILE_FLAGS.join(" ")}`);
  const start = await taskWords("start");
  assert.ok(writeGrants(start).includes(stateDir), `start: ${start.join(" ")}`);
});

/** Runs the compile task's script with `args` and `env`, as `deno task compile` would. */
async function runCompileTask(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...(await taskPermissions()), COMPILE_SCRIPT, ...args],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("without denort, the compile task says in one line what is missing and where it comes from", async () => {
  // A fresh DENO_DIR holds no cached denort, and a proxy on a closed port makes the download
  // fail here even where dl.deno.land is reachable.
  const denoDir = await Deno.makeTempDir({ prefix: "push-denodir-" });
  try {
    // The npm packages come from the registry first (as on any machine that ran the server),
    // so that the only thing missing is denort.
    const cached = await new Deno.Command(Deno.execPath(), {
      args: ["cache", "main.ts"],
      cwd: ROOT,
      env: { DENO_DIR: denoDir },
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(cached.success, new TextDecoder().decode(cached.stderr));
    const closed = "http://127.0.0.1:9";
    const r = await runCompileTask(["--no-check", "--output", `${denoDir}/push-server`], {
      DENORT_BIN: "",
      DENO_DIR: denoDir,
      HTTPS_PROXY: closed,
      HTTP_PROXY: closed,
      NO_PROXY: "",
    });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    const { archive, page } = denortSource({
      version: Deno.version.deno,
      target: Deno.build.target,
    });
    assert.ok(lines[0].startsWith("deno task compile: deno compile needs denort"), lines[0]);
    for (const part of [archive, page, "DENORT_BIN="]) assert.ok(lines[0].includes(part), part);
    assert.doesNotMatch(r.stderr, /dns error|Stack backtrace|Caused by/);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("a DENORT_BIN that names no file is one line saying so", async () => {
  const r = await runCompileTask([], { DENORT_BIN: "/nonexistent/denort" });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^deno task compile: DENORT_BIN=\/nonexistent\/denort is not a file; .*\n$/,
  );
});

Deno.test("denortProblem leaves other compile failures to deno's own message", () => {
  const context = { denortBin: undefined, version: "2.9.6", target: "x86_64-unknown-linux-gnu" };
  assert.equal(denortProblem({ ...context, stderr: "error: Module not found" }), null);
  assert.match(
    denortProblem({ ...context, stderr: "0: Setting up base binary.\n1: error sending request" })!,
    /could not be downloaded: unzip denort-x86_64-unknown-linux-gnu\.zip from the Deno 2\.9\.6/,
  );
});

interface Running {
  port: number;
  fifo: string;
  /** What it logged up to its "listening on" line (start-up warnings come before it). */
  startLog: string;
  stop(): Promise<void>;
}

/** Starts `command args` on port 0 with a fresh FIFO; resolves once it logs its port. */
async function launch(command: string, args: string[], cwd: string): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: "push-bin-" });
  const fifo = `${dir}/in.fifo`;
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  const child = new Deno.Command(command, {
    args: [...args, "--port", "0", "--fifo", fifo],
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = Date.now() + 20_000;
  while (!/listening on \S+:\d+/.test(log)) {
    const { value, done } = await reader.read();
    if (done || Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`did not start: ${log}`);
    }
    log += value;
  }
  const port = Number(/listening on \S+:(\d+)/.exec(log)![1]);
  return {
    port,
    fifo,
    startLog: log,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      reader.cancel().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function writeLine(fifo: string, line: string): Promise<void> {
  const file = await Deno.open(fifo, { write: true });
  await file.write(new TextEncoder().encode(line + "\n"));
  file.close();
}

Deno.test("a relative handlers path missing from the working directory is found in the project directory", async () => {
  // The same lookup finds a file embedded with --include inside the executable.
  const elsewhere = await Deno.makeTempDir({ prefix: "push-cwd-" });
  const server = await launch(
    Deno.execPath(),
    ["run", "--quiet", "--allow-net", "--allow-read", "--allow-env", MAIN, "examples/echo.ts"],
    elsewhere,
  );
  try {
    const client = await connectWs(server.port);
    client.ws.send("found");
    assert.equal(await client.next(), "found");
    await closeWs(client);
  } finally {
    await server.stop();
    await Deno.remove(elsewhere, { recursive: true });
  }
});

/** Fetches `path` from the server's public port; the whole body is read. */
async function fetchResource(
  port: number,
  path: string,
): Promise<{ status: number; type: string | null; body: Uint8Array }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  const body = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, type: response.headers.get("content-type"), body };
}

/** Runs `binary` (cwd `dir`) with `args`, hands it to `body`, and stops it whatever happens. */
async function withLaunched(
  { binary, dir, args = [] }: { binary: string; dir: string; args?: string[] },
  body: (server: Running) => void | Promise<void>,
): Promise<void> {
  const server = await launch(binary, args, dir);
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

Deno.test({
  name: "the compiled executable serves, and keeps the grants and files deno task compile gives it",
  ignore: skipReason !== null,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "push-compile-" });
    try {
      const binary = `${dir}/push-server`;
      const fixture = "tests/fixtures/upgrade_handlers.ts";
      // The task itself, with an operator's file added as the README shows.
      const out = await runCompileTask(["--include", fixture, "--output", binary], {});
      assert.equal(out.code, 0, out.stderr);

      await t.step("the default broadcast", () =>
        withLaunched({ binary, dir }, async (server) => {
          const client = await connectWs(server.port);
          await client.roundTrip(); // registered for broadcasts
          await writeLine(server.fifo, "to all");
          assert.equal(await client.next(), "to all");
          await closeWs(client);
        }));

      await t.step(
        "the browser client embedded from client/, at /push-client.js",
        () =>
          withLaunched({ binary, dir }, async (server) => {
            const served = await fetchResource(server.port, CLIENT_PATH);
            assert.equal(served.status, 200);
            assert.equal(served.type, "text/javascript; charset=utf-8");
            assert.deepStrictEqual(served.body, await Deno.readFile(CLIENT_SOURCE));
          }),
      );

      await t.step("channel history on disk in the default state dir, which it may write", () =>
        // Run from `dir`: the relative grant and the default --state-dir both resolve there.
        withLaunched({ binary, dir }, async (server) => {
          assert.doesNotMatch(server.startLog, new RegExp(MEMORY_ONLY));
          const stored = await Deno.stat(`${dir}/${defaultStateDir()}/${HISTORY_FILE}`);
          assert.ok(stored.isFile);
        }));

      await t.step("history in memory, with one warning, where no grant covers --state-dir", () =>
        // The same check fails where the grant is missing: what the step above relies on.
        withLaunched({ binary, dir, args: ["--state-dir", `${dir}/ungranted`] }, (server) => {
          assert.match(server.startLog, new RegExp(MEMORY_ONLY));
        }));

      await t.step(
        "a built-in example, by name",
        () =>
          withLaunched({ binary, dir, args: ["echo"] }, async (server) => {
            const client = await connectWs(server.port);
            client.ws.send("echo me");
            assert.equal(await client.next(), "echo me");
            await closeWs(client);
          }),
      );

      await t.step(
        "the operator's file, by its path relative to the project directory",
        () =>
          withLaunched({ binary, dir, args: [fixture] }, async (server) => {
            const client = await connectWs(server.port, "/?user=op", {
              headers: { Cookie: "session=s3cret" },
            });
            assert.equal(await client.next(), "welcome op (none)");
            await closeWs(client);
          }),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// The single executable: `deno compile` (as `deno task compile` runs it) builds a binary that
// serves the default broadcast, the built-in examples, and an operator's handlers file
// embedded with --include. Compiling needs a denort binary: these tests run when DENORT_BIN
// points at one and say why they skipped otherwise.

import assert from "node:assert/strict";
import { closeWs, connectWs } from "./support/ws_client.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const denort = Deno.env.get("DENORT_BIN");
const skipReason = denort
  ? null
  : "DENORT_BIN is not set: deno compile needs a denort binary, which this machine cannot " +
    "download (set DENORT_BIN=/path/to/denort to run these tests)";
if (skipReason) console.log(`compile_test: skipping the compiled-binary tests: ${skipReason}`);

/** The permissions and --include of `deno task compile`, read from deno.json. */
async function compileFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task: string = config.tasks.compile;
  return task.split(/\s+/).filter((w) => w.startsWith("--allow-") || w === "examples/")
    .flatMap((w) => w === "examples/" ? ["--include", `${ROOT}examples/`] : [w]);
}

interface Running {
  port: number;
  fifo: string;
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
    env: { PUSH_TOKEN_SECRET: "x".repeat(40) },
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

Deno.test({
  name: "the compiled executable runs the broadcast, the examples and an included handlers file",
  ignore: skipReason !== null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "push-compile-" });
    try {
      const binary = `${dir}/push-server`;
      const fixture = "tests/fixtures/upgrade_handlers.ts";
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "compile",
          ...(await compileFlags()),
          "--include",
          `${ROOT}${fixture}`,
          "--output",
          binary,
          MAIN,
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));

      // Default broadcast.
      let server = await launch(binary, [], dir);
      try {
        const client = await connectWs(server.port);
        await client.roundTrip(); // registered for broadcasts
        await writeLine(server.fifo, "to all");
        assert.equal(await client.next(), "to all");
        await closeWs(client);
      } finally {
        await server.stop();
      }
      // Built-in example by name.
      server = await launch(binary, ["echo"], dir);
      try {
        const client = await connectWs(server.port);
        client.ws.send("echo me");
        assert.equal(await client.next(), "echo me");
        await closeWs(client);
      } finally {
        await server.stop();
      }
      // The operator's file, named by its path relative to the project directory.
      server = await launch(binary, [fixture], dir);
      try {
        const client = await connectWs(server.port, "/?user=op", {
          headers: { Cookie: "session=s3cret" },
        });
        assert.equal(await client.next(), "welcome op (none)");
        await closeWs(client);
      } finally {
        await server.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

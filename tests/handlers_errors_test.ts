// Failing handlers, through the real server process: a throw or a rejection is logged with
// the event name and connection id and harms nobody; a broken handlers file stops start-up
// with one line; an unknown export gets one warning.

import assert from "node:assert/strict";
import { startServer } from "./support/server_process.ts";
import { closeWs, connectWs, rawHandshake } from "./fixtures/clients.ts";

const FIXTURE = new URL("./fixtures/failing_handlers.ts", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("a throwing or rejecting text handler is logged; its connection and others stay open", async () => {
  const server = await startServer({ args: [FIXTURE] });
  try {
    const a = await connectWs(server.port);
    const b = await connectWs(server.port);
    await server.waitForLog(/connection (\d+) open[\s\S]*connection (\d+) open/);
    const aId = Number(/connection (\d+) open/.exec(server.stderr())![1]);
    a.ws.send("throw");
    await server.waitForLog(`error: handler text failed (connection ${aId}): boom in text`);
    a.ws.send("reject");
    await server.waitForLog(
      `error: handler text failed (connection ${aId}): RangeError: rejected in text`,
    );
    // The same connection still works, and so does the other one.
    a.ws.send("still here");
    assert.equal(await a.next(), "echo still here");
    b.ws.send("me too");
    assert.equal(await b.next(), "echo me too");
    await server.writeFifo("to everyone\n");
    assert.equal(await a.next(), "to everyone");
    assert.equal(await b.next(), "to everyone");
    await closeWs(a);
    await closeWs(b);
  } finally {
    await server.stop();
  }
});

Deno.test("a throwing open handler is logged and the connection stays open", async () => {
  const server = await startServer({ args: [FIXTURE] });
  try {
    const client = await connectWs(server.port, "/open-throws");
    await server.waitForLog(
      /error: handler open failed \(connection \d+\): TypeError: boom in open/,
    );
    client.ws.send("hi");
    assert.equal(await client.next(), "echo hi");
    await closeWs(client);
  } finally {
    await server.stop();
  }
});

Deno.test("a throwing fifo handler is logged; the next lines are still handled", async () => {
  const server = await startServer({ args: [FIXTURE] });
  try {
    const client = await connectWs(server.port);
    await server.writeFifo("before\nthrow\nafter\n");
    assert.equal(await client.next(), "before");
    assert.equal(await client.next(), "after");
    await server.waitForLog("error: handler fifo failed: boom in fifo");
    await closeWs(client);
  } finally {
    await server.stop();
  }
});

Deno.test("a throwing upgrade handler answers 500 and the server keeps serving", async () => {
  const server = await startServer({ args: [FIXTURE] });
  try {
    const refused = await rawHandshake(server.port, { path: "/?fail=throw" });
    assert.equal(refused.status, 500);
    await server.waitForLog(/error: handler upgrade failed \(connection \d+\): boom in upgrade/);
    const client = await connectWs(server.port);
    client.ws.send("ok?");
    assert.equal(await client.next(), "echo ok?");
    await closeWs(client);
  } finally {
    await server.stop();
  }
});

/** Runs main.ts with `handlers` until it exits (or is killed after 10 s) and returns its output. */
async function runWith(handlers: string): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "push-load-" });
  try {
    const fifo = `${dir}/push.fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-net", "--allow-read", MAIN, "--port", "0", "--fifo", fifo]
        .concat(handlers),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const out = await child.output();
    clearTimeout(timer);
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function handlersFile(name: string, source: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "push-handlers-" });
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, source);
  return path;
}

Deno.test("a handlers file that exports a known name as a non-function stops start-up with one line", async () => {
  const file = await handlersFile("bad_export.ts", 'export const text = "hello";\n');
  const { code, stderr } = await runWith(file);
  assert.equal(code, 2);
  assert.equal(
    stderr,
    `push-server: handlers file ${file}: export 'text' is a string, not a function\n`,
  );
});

Deno.test("a handlers file that fails to load stops start-up with one line naming it", async () => {
  const syntax = await handlersFile("syntax.ts", "export function text( {\n");
  const throwing = await handlersFile("throws.ts", 'throw new Error("no config");\n');
  for (const file of [syntax, throwing, "/nonexistent/handlers.ts"]) {
    const { code, stderr } = await runWith(file);
    assert.equal(code, 2, stderr);
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.ok(lines[0].startsWith("push-server: "), stderr);
    assert.ok(lines[0].includes(file), stderr);
  }
  assert.match((await runWith(throwing)).stderr, /no config/);
});

Deno.test("an unknown export name gets one warning line, with a hint, and the server runs", async () => {
  const file = await handlersFile(
    "typo.ts",
    "export function onText() {}\nexport const VERSION = 3;\n" +
      "export function fifo(line: string, server: { broadcast(m: string): void }) {\n" +
      "  server.broadcast(line.toUpperCase());\n}\n",
  );
  const server = await startServer({ args: [file] });
  try {
    const warnings = server.stderr().split("\n").filter((l) => l.startsWith("warn: handlers file"));
    // A module namespace lists its exports in sorted order.
    assert.deepEqual(warnings, [
      `warn: handlers file ${file}: export 'VERSION' is not a handler name and is ignored ` +
      "(known: upgrade, start, open, text, binary, ping, close, subscribe, fifo, loop, shutdown)",
      `warn: handlers file ${file}: export 'onText' is not a handler name and is ignored ` +
      "(did you mean 'text'?)",
    ]);
    const client = await connectWs(server.port);
    await server.writeFifo("shout\n");
    assert.equal(await client.next(), "SHOUT");
    await closeWs(client);
  } finally {
    await server.stop();
  }
});

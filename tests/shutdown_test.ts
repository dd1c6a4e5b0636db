// Shutdown of the real server process: SIGINT/SIGTERM run the shutdown handler, send 1001 to
// every client (RFC 6455 §7.4.1 "going away"), wait a bounded time for close replies and exit 0.

import assert from "node:assert/strict";
import { startServer } from "./support/server_process.ts";
import { connectWs } from "./support/ws_client.ts";
import { parseClose, RawClient } from "./support/raw_client.ts";

const FIXTURE = new URL("./fixtures/shutdown_handlers.ts", import.meta.url).pathname;
const GOING_AWAY = 1001;
const CLOSE_OPCODE = 0x8;
/** A failure bound only: a healthy shutdown takes well under a second. */
const EXIT_BOUND_MS = 15_000;

/** Sends `signal` and waits for the exit, failing (not hanging) if the process does not exit. */
function exitAfter(
  server: Awaited<ReturnType<typeof startServer>>,
  signal: Deno.Signal,
): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    server.signal(signal).finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no exit ${EXIT_BOUND_MS} ms after ${signal}:\n${server.stderr()}`)),
        EXIT_BOUND_MS,
      );
    }),
  ]);
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} sends 1001 to every client and exits 0, with no FIFO writer (RFC 6455 §7.4.1)`, async () => {
    const server = await startServer();
    try {
      const a = await connectWs(server.port);
      const b = await connectWs(server.port, "/other");
      // Pongs back: the server has registered both connections.
      await Promise.all([a.roundTrip(), b.roundTrip()]);
      // Nobody has the FIFO open for writing: the reader is blocked in open(2).
      const status = await exitAfter(server, signal);
      assert.equal((await a.closed).code, GOING_AWAY);
      assert.equal((await b.closed).code, GOING_AWAY);
      assert.equal(status.code, 0, server.stderr());
    } finally {
      await server.stop();
    }
  });
}

Deno.test("the shutdown handler runs before the 1001, and what it sends arrives", async () => {
  const server = await startServer({ args: [FIXTURE] });
  try {
    const client = await connectWs(server.port);
    await client.roundTrip();
    const status = await exitAfter(server, "SIGTERM");
    assert.equal(await client.next(), "bye from shutdown (1 connections)");
    assert.equal((await client.closed).code, GOING_AWAY);
    assert.equal(status.code, 0);
  } finally {
    await server.stop();
  }
});

Deno.test("FIFO lines already read are delivered before the 1001 frames go out", async () => {
  const server = await startServer({ args: [FIXTURE] });
  try {
    const client = await connectWs(server.port);
    await client.roundTrip();
    // One write: the server reads all three lines at once; the handler takes 150 ms for each.
    await server.writeFifo("one\ntwo\nthree\n");
    await server.waitForLog("fixture: fifo got one");
    const status = await exitAfter(server, "SIGTERM");
    assert.deepEqual(
      [await client.next(), await client.next(), await client.next(), await client.next()],
      ["one", "two", "three", "bye from shutdown (1 connections)"],
    );
    assert.equal((await client.closed).code, GOING_AWAY);
    assert.equal(status.code, 0);
  } finally {
    await server.stop();
  }
});

Deno.test("a client that never answers the 1001 is dropped after --shutdown-timeout; exit 0", async () => {
  const server = await startServer({ args: ["--shutdown-timeout", "400ms"] });
  try {
    // After the pong, the server has registered the connection: shutdown will close it.
    const raw = await RawClient.open(server.port, { roundTrip: true });
    const started = performance.now();
    const exited = exitAfter(server, "SIGTERM");
    const close = await raw.readFrame(EXIT_BOUND_MS);
    assert.equal(close.opcode, CLOSE_OPCODE);
    assert.equal(parseClose(close.payload).code, GOING_AWAY);
    // We never reply; the server must still exit, soon after the timeout.
    const status = await exited;
    const elapsed = performance.now() - started;
    assert.equal(status.code, 0);
    assert.ok(elapsed >= 350, `exited after ${elapsed} ms, before the shutdown timeout`);
    assert.ok(elapsed < 5000, `exited after ${elapsed} ms`);
    assert.match(server.stderr(), /1 client did not close in time/);
    raw.close();
  } finally {
    await server.stop();
  }
});

Deno.test("a second signal exits at once, even while the shutdown handler hangs", async () => {
  const server = await startServer({ args: [FIXTURE, "--shutdown-timeout", "60s"] });
  try {
    await server.writeFifo("hang-on-shutdown\n");
    await server.waitForLog("fixture: shutdown will hang");
    server.process.kill("SIGTERM");
    await server.waitForLog("fixture: shutdown started");
    const started = performance.now();
    const status = await exitAfter(server, "SIGINT");
    assert.equal(status.code, 1, "an interrupted shutdown does not report success");
    assert.ok(performance.now() - started < 3000);
    assert.match(server.stderr(), /error: SIGINT during shutdown: exiting at once/);
  } finally {
    await server.stop();
  }
});

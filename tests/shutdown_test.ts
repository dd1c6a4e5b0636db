// Shutdown of the real server on SIGTERM/SIGINT: clients get Close 1001 and the process exits 0
// within --shutdown-timeout, whether or not a FIFO writer is connected.

import assert from "node:assert/strict";
import { closeBody, parseClose, RawClient } from "./support/raw_client.ts";
import { startServer } from "./support/server_process.ts";

const CLOSE = 0x8;
const EXIT_BOUND_MS = 8000;

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} with no FIFO writer: clients get 1001 and the server exits 0 (RFC 6455 §7.4.1)`, async () => {
    const server = await startServer({ args: ["--shutdown-timeout", "5s"] });
    const client = await RawClient.open(server.port);
    try {
      await client.roundTrip();
      server.process.kill(signal);
      const frame = await client.readFrame(EXIT_BOUND_MS);
      assert.equal(frame.opcode, CLOSE);
      assert.equal(parseClose(frame.payload).code, 1001);
      await client.sendFrame({ opcode: CLOSE, payload: closeBody(1001) });
      assert.equal(await client.closedWithin(3000), true, "the server closes TCP");
      client.close();
      // The only client closed cleanly, so the exit does not wait out --shutdown-timeout.
      const status = await within(server.process.status, 3000, "exit");
      assert.equal(status.code, 0, server.stderr());
    } finally {
      client.close();
      await server.stop();
    }
  });
}

Deno.test("SIGTERM: a client that never answers the Close is dropped at --shutdown-timeout", async () => {
  const server = await startServer({ args: ["--shutdown-timeout", "500ms"] });
  const client = await RawClient.open(server.port);
  try {
    await client.roundTrip();
    const started = Date.now();
    server.process.kill("SIGTERM");
    const status = await within(server.process.status, EXIT_BOUND_MS, "exit");
    assert.equal(status.code, 0, server.stderr());
    assert.ok(Date.now() - started >= 400, "exited before the shutdown timeout");
  } finally {
    client.close();
    await server.stop();
  }
});

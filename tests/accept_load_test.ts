// Thousands of connections opened and dropped at once, and half-open handshakes held open,
// must not stop the real server: afterwards a normal client still connects and gets a line.

import assert from "node:assert/strict";
import { RawClient, upgradeRequest } from "./support/raw_client.ts";
import { type ServerProcess, startServer } from "./support/server_process.ts";

const CONNECTIONS = 3000;
const CONCURRENCY = 200;
const HELD_OPEN = 500;
const encoder = new TextEncoder();

/** Runs `count` tasks with at most CONCURRENCY at a time. */
async function inBatches(count: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** Connects and goes away in one of several rude ways; errors from the peer are expected. */
async function rude(port: number, i: number): Promise<void> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return; // The backlog may overflow for a moment; the server is what is under test.
  }
  try {
    switch (i % 4) {
      case 0: // Close right after connecting.
        break;
      case 1: // Half a request head, then gone.
        await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr"));
        break;
      case 2: // A whole request, gone before reading the 101.
        await conn.write(encoder.encode(upgradeRequest()));
        break;
      case 3: // A whole request and the start of a frame, then gone.
        await conn.write(encoder.encode(upgradeRequest() + "\x81\xfe"));
        break;
    }
  } catch { /* the server may have answered and closed already */ }
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** A fresh client connects and receives a FIFO line. */
async function assertStillServes(server: ServerProcess, line: string): Promise<void> {
  // Once its ping is answered, the server has registered the client for broadcasts.
  const client = await RawClient.open(server.port, { roundTrip: true });
  try {
    await server.writeFifo(`${line}\n`);
    // The FIFO reader may be backing off (up to 5 s) from an open that hit EMFILE too.
    const frame = await client.readMessageFrame(20_000).catch((e) => {
      throw new Error(`${e}; server log:\n${server.stderr()}`);
    });
    assert.equal(new TextDecoder().decode(frame.payload), line);
  } finally {
    client.close();
  }
}

Deno.test(`${CONNECTIONS} connections opened and dropped rudely do not stop the server`, async () => {
  const server = await startServer({ logLevel: "info" });
  try {
    const started = Date.now();
    await inBatches(CONNECTIONS, (i) => rude(server.port, i));
    await assertStillServes(server, "still serving");
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    assert.doesNotMatch(server.stderr(), /^error:/m);
  } finally {
    await server.stop();
  }
});

Deno.test(`${HELD_OPEN} half-open handshakes held open do not block a new client`, async () => {
  const server = await startServer({ logLevel: "info" });
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < HELD_OPEN; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(encoder.encode("GET / HTTP/1.1\r\n"));
      held.push(conn);
    }
    await assertStillServes(server, "past the crowd");
  } finally {
    for (const conn of held) conn.close();
    await server.stop();
  }
});

Deno.test("running out of file descriptors (EMFILE) pauses accepting, then the server recovers", async () => {
  const server = await startServer({ logLevel: "info", maxOpenFiles: 48 });
  const held: Deno.TcpConn[] = [];
  try {
    // More connections than the server has descriptors left: the kernel's backlog holds the rest.
    for (let i = 0; i < 100; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    await server.waitForLog(/accept failed: Too many open files/);
    for (const conn of held.splice(0)) conn.close();
    await assertStillServes(server, "descriptors are back");
  } finally {
    for (const conn of held) conn.close();
    await server.stop();
  }
});

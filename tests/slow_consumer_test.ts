// A client that stops reading while the FIFO pushes a lot is closed as a slow consumer once
// its queue passes --max-queue; the server's memory stays bounded and other clients get all.

import assert from "node:assert/strict";
import { clientFrame, parseClose, RawClient } from "./support/raw_client.ts";
import { startServer } from "./support/server_process.ts";

const LINE_BYTES = 4000;
const LINES = 16_000; // 64 MB in all
const MAX_QUEUE = "1MiB";
/** Growth of the server's resident memory allowed over its idle size while pushing. */
const RSS_GROWTH_BOUND_MB = 48;

function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
  return kb / 1024;
}

Deno.test("a client that stops reading is closed as a slow consumer; memory stays bounded", async () => {
  const server = await startServer({
    args: ["--max-queue", MAX_QUEUE, "--max-message-size", MAX_QUEUE],
    logLevel: "debug",
  });
  // Each ping answered: the server has registered both clients for FIFO broadcasts.
  const slow = await RawClient.open(server.port, { roundTrip: true });
  const normal = await RawClient.open(server.port, { roundTrip: true });
  let sampling = true;
  try {
    const pid = server.process.pid;
    const idle = rssMb(pid);
    let peak = idle;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, rssMb(pid));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    const lines = Array.from({ length: LINES }, (_, i) => {
      const head = `${i} `;
      return head + "z".repeat(LINE_BYTES - head.length);
    });
    // The slow client never reads; the normal one reads everything as it comes.
    // Awaited later: its failure is kept as a value, never an unhandled rejection.
    const writing = server.writeFifo(lines.join("\n") + "\n").then(() => null, (e: unknown) => e);
    for (let i = 0; i < LINES; i++) {
      const frame = await normal.readMessageFrame(20_000);
      const text = new TextDecoder().decode(frame.payload);
      if (!text.startsWith(`${i} `)) {
        assert.fail(`normal client: message ${i} is ${text.slice(0, 20)}`);
      }
    }
    assert.equal(await writing, null, "the FIFO writer");
    // The client cannot see the server's decision without reading; the warning is the one
    // observable of it.
    await server.waitForLog(/closed as a slow consumer/);
    sampling = false;
    await sampler;

    // The normal client is still served; the server's warning names one connection.
    await normal.roundTrip();
    assert.equal(server.countLog(/closed as a slow consumer/), 1, "only the slow client");
    assert.ok(
      peak - idle < RSS_GROWTH_BOUND_MB,
      `server RSS grew from ${idle.toFixed(0)} MB to ${peak.toFixed(0)} MB while pushing 64 MB`,
    );
    // The slow client's connection ends (after the bytes the kernel had already taken; the
    // Close 1008 itself may be cut off by --close-timeout, as nobody reads it).
    assert.equal(await slow.closedWithin(10_000), true, "the slow client is disconnected");
    await server.waitForLog(/closed: 4000 slow consumer/);
  } finally {
    sampling = false;
    slow.close();
    normal.close();
    await server.stop();
  }
});

Deno.test("a slow consumer that reads again gets whole frames, then Close 4000 (RFC 6455 §5.2, §7.4.2)", async () => {
  // Messages over the 256 KiB write-coalescing limit go out as a header write and a payload
  // write; dropping the queue between the two would corrupt the stream.
  const server = await startServer({
    args: ["--max-queue", "1MiB", "--max-message-size", "1MiB"],
    logLevel: "debug",
  });
  const slow = await RawClient.open(server.port);
  try {
    await slow.roundTrip();
    const lines = Array.from({ length: 60 }, (_, i) => `${i} ` + "q".repeat(300_000));
    // Awaited later: its failure is kept as a value, never an unhandled rejection.
    const writing = server.writeFifo(lines.join("\n") + "\n").then(() => null, (e: unknown) => e);
    await server.waitForLog(/closed as a slow consumer/, 20_000);
    // Read everything the server sent: whole text frames in order, ending with Close 4000.
    let expected = 0;
    for (;;) {
      const frame = await slow.readMessageFrame(10_000);
      if (frame.opcode === 0x8) {
        assert.equal(parseClose(frame.payload).code, 4000);
        break;
      }
      assert.equal(frame.opcode, 0x1, `frame after ${expected} messages is text`);
      const text = new TextDecoder().decode(frame.payload);
      assert.equal(text, lines[expected], `message ${expected} arrives whole`);
      expected++;
    }
    assert.ok(expected < lines.length, "the slow consumer was cut off");
    assert.equal(await writing, null, "the FIFO writer");
  } finally {
    slow.close();
    await server.stop();
  }
});

Deno.test("a client that floods pings and never reads the pongs is closed as a slow consumer (RFC 6455 §5.5.2)", async () => {
  // A short --close-timeout: the flooder, cut off, is not waited for long.
  const server = await startServer({
    args: ["--max-queue", MAX_QUEUE, "--max-message-size", MAX_QUEUE, "--close-timeout", "300ms"],
    logLevel: "debug",
  });
  const flooder = await RawClient.open(server.port);
  try {
    await flooder.roundTrip();
    const idle = rssMb(server.process.pid);
    const ping = clientFrame({ opcode: 0x9, payload: new Uint8Array(125) });
    const batch = new Uint8Array(ping.length * 8000);
    for (let i = 0; i < 8000; i++) batch.set(ping, i * ping.length);
    // 20 MB of pings, i.e. 20 MB of pongs owed to a peer that reads none of them.
    try {
      for (let i = 0; i < 20; i++) await flooder.write(batch);
    } catch { /* the server may cut the flooder off mid-write */ }
    await server.waitForLog(/closed as a slow consumer/);
    const grown = rssMb(server.process.pid) - idle;
    assert.ok(grown < RSS_GROWTH_BOUND_MB, `server RSS grew by ${grown.toFixed(0)} MB`);
  } finally {
    flooder.close();
    await server.stop();
  }
});

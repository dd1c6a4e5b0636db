// Tests the fan-out (lib/server/hub.ts) in-process: a few slow readers cost only themselves.
// Never-reading clients are closed as slow consumers with 4000 while the FIFO keeps flowing to
// the readers, and --max-queue-total sheds the clients holding the most.

import assert from "node:assert/strict";
import { withInProcessServer } from "../support/in_process.ts";
import type { CloseInfo, Handlers } from "../../lib/api/handlers.ts";
import { RawClient } from "../support/raw_client.ts";

/** Handlers that record how each connection closed, by connection id. */
function recordCloses(): { handlers: Handlers; closes: Map<number, CloseInfo> } {
  const closes = new Map<number, CloseInfo>();
  return { handlers: { close: (conn, info) => void closes.set(conn.id, info) }, closes };
}

const inProcess = { sanitizeOps: false, sanitizeResources: false };

/** Waits until `done()` (the server's close handlers run just after its sockets close). */
async function until(done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}
const decoder = new TextDecoder();

/** Writes `count` numbered lines of `size` bytes into the FIFO, in 64 KiB writes. */
async function pushLines(fifo: string, { count, size }: { count: number; size: number }) {
  const f = await Deno.open(fifo, { write: true });
  try {
    await writeAll(f, { count, size });
  } catch (e) {
    // The server stopped reading (a failed test shut it down): nothing more to deliver.
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  } finally {
    f.close();
  }
}

async function writeAll(f: Deno.FsFile, { count, size }: { count: number; size: number }) {
  const perWrite = Math.max(1, Math.floor(65536 / size));
  for (let i = 0; i < count; i += perWrite) {
    let chunk = "";
    for (let j = i; j < Math.min(count, i + perWrite); j++) {
      chunk += `${j} `.padEnd(size - 1, "z") + "\n";
    }
    const bytes = new TextEncoder().encode(chunk);
    let done = 0;
    while (done < bytes.length) done += await f.write(bytes.subarray(done));
  }
}

/** Reads `count` numbered text frames, in order; fails on a gap. */
async function readLines(client: RawClient, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    let frame = await client.readFrame(20_000);
    while (frame.opcode === 0x9) frame = await client.readFrame(20_000); // the server's pings
    const text = decoder.decode(frame.payload);
    if (!text.startsWith(`${i} `)) {
      assert.fail(
        `expected line ${i}, got opcode ${frame.opcode}: ${JSON.stringify(text.slice(0, 40))}`,
      );
    }
  }
}

Deno.test({
  name: "never-reading clients are closed with 4000 while the FIFO keeps flowing to readers",
  ...inProcess,
  fn: () => {
    const { handlers, closes } = recordCloses();
    return withInProcessServer({
      args: ["--max-queue", "512KiB", "--max-message-size", "64KiB", "--close-timeout", "1s"],
      handlers,
    }, async ({ port, fifo, lines, waitForLog }) => {
      const SLOW = 10;
      const READERS = 3;
      const COUNT = 20_000;
      const slow = await Promise.all(Array.from({ length: SLOW }, () => RawClient.open(port)));
      const readers = await Promise.all(
        Array.from({ length: READERS }, () => RawClient.open(port)),
      );
      try {
        const writing = pushLines(fifo, { count: COUNT, size: 1000 }); // 20 MB
        await Promise.all(readers.map((r) => readLines(r, COUNT)));
        await writing;
        await waitForLog(/closed as a slow consumer/);
        // Their Close sits behind data they never read: TCP is dropped at the close deadline.
        for (const s of slow) assert.equal(await s.closedWithin(10_000), true);
        const closed = lines.filter((l) => /closed as a slow consumer/.test(l)).length;
        assert.equal(closed, SLOW, "every never-reader, and no reader");
        await until(() => closes.size === SLOW);
        const codes = [...closes.values()].map((c) => c.code);
        assert.deepStrictEqual(codes, Array(SLOW).fill(4000));
      } finally {
        for (const c of [...slow, ...readers]) c.close();
      }
    });
  },
});

Deno.test({
  name: "--max-queue-total sheds the clients holding the most, not the readers",
  ...inProcess,
  fn: () => {
    const { handlers, closes } = recordCloses();
    return withInProcessServer({
      handlers,
      args: [
        "--max-queue",
        "8MiB",
        "--max-queue-total",
        "4MiB",
        "--max-message-size",
        "64KiB",
        "--close-timeout",
        "1s",
      ],
    }, async ({ port, fifo, waitForLog }) => {
      const slow = await Promise.all([1, 2, 3].map(() => RawClient.open(port)));
      const reader = await RawClient.open(port);
      try {
        const COUNT = 10_000;
        const writing = pushLines(fifo, { count: COUNT, size: 1000 });
        await readLines(reader, COUNT);
        await writing;
        await waitForLog(/over --max-queue-total/);
        for (const s of slow) assert.equal(await s.closedWithin(10_000), true);
        await until(() => closes.size === 3);
        assert.deepStrictEqual([...closes.values()].map((c) => c.code), [4000, 4000, 4000]);
      } finally {
        for (const c of [...slow, reader]) c.close();
      }
    });
  },
});

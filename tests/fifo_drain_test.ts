// Stopping the FIFO reader (lib/sources/fifo.ts `FifoReader.stop`): what writers already put
// in the pipe is read and delivered before the reader stops, within a time bound; and on
// SIGTERM the real server delivers those lines before its Close 1001 (RFC 6455 §7.4.1).

import assert from "node:assert/strict";
import type { Logger } from "../lib/api/handlers.ts";
import { FifoReader } from "../lib/sources/fifo.ts";
import { connectWs } from "./fixtures/clients.ts";
import { startServer } from "./support/server_process.ts";

const SLOW_FIFO = new URL("./fixtures/slow_fifo_handlers.ts", import.meta.url).pathname;
const GOING_AWAY = 1001;
const OPEN_LOG = /connection \d+ open from/;
const encoder = new TextEncoder();

interface Harness {
  readonly reader: FifoReader;
  readonly running: Promise<void>;
  readonly writer: Deno.FsFile;
  readonly delivered: string[];
  readonly warnings: string[];
  /** Resolves once `count` lines have been delivered in all. */
  deliveredCount(count: number): Promise<void>;
  /** Resolves once a warning matching `pattern` has been logged. */
  warned(pattern: RegExp): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * A FifoReader on a fresh FIFO with one writer holding it open. `onBatch` waits for
 * `gate()` before taking each batch (so the pipe fills while it waits).
 */
async function harness(gate: () => Promise<void> = () => Promise.resolve()): Promise<Harness> {
  const dir = await Deno.makeTempDir({ prefix: "push-drain-" });
  const path = `${dir}/push.fifo`;
  const made = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(made.success, "mkfifo");
  const delivered: string[] = [];
  const warnings: string[] = [];
  const waiters = new Set<() => void>();
  const note = (message: string) => {
    warnings.push(message);
    for (const w of waiters) w();
  };
  const log: Logger = {
    error: note,
    warn: note,
    info: () => {},
    debug: () => {},
  };
  const reader = new FifoReader(path, {
    maxLineBytes: 4096,
    log,
    async onBatch(lines) {
      await gate();
      delivered.push(...lines);
      for (const w of waiters) w();
    },
  });
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!done()) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  const running = reader.run();
  // Opening for writing waits for the reader's open, so the reader holds the FIFO after this.
  const writer = await Deno.open(path, { write: true });
  return {
    reader,
    running,
    writer,
    delivered,
    warnings,
    deliveredCount: (count) => until(() => delivered.length >= count),
    warned: (pattern) => until(() => warnings.some((w) => pattern.test(w))),
    async cleanup() {
      try {
        writer.close();
      } catch { /* closed by the test */ }
      await reader.stop({ drainMs: 0 });
      await running;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `count` lines of `size` bytes each (newline included), numbered. */
function numberedLines(count: number, size: number): string[] {
  return Array.from({ length: count }, (_, i) => `${i}:`.padEnd(size - 1, "x"));
}

/** A gate that holds every batch until `open()`. */
function closedGate() {
  const { promise, resolve } = Promise.withResolvers<void>();
  let entered = Promise.withResolvers<void>();
  return {
    gate: () => {
      entered.resolve();
      return promise;
    },
    /** Resolves once a batch is waiting at the gate. */
    waiting: () => entered.promise,
    open: () => resolve(),
    reset: () => entered = Promise.withResolvers<void>(),
  };
}

Deno.test("stop() delivers every line already in the pipe before it resolves", async () => {
  const g = closedGate();
  const h = await harness(g.gate);
  try {
    const lines = numberedLines(500, 100);
    // The reader takes the first line and waits on onBatch.
    await h.writer.write(encoder.encode(lines[0] + "\n"));
    await g.waiting();
    // 49,900 bytes: fits in the pipe (64 KiB on Linux), so the write returns at once.
    await h.writer.write(encoder.encode(lines.slice(1).join("\n") + "\n"));
    const stopped = h.reader.stop({ drainMs: 5000 });
    g.open();
    await stopped;
    assert.deepStrictEqual(h.delivered, lines);
    assert.deepStrictEqual(h.warnings, []);
  } finally {
    await h.cleanup();
  }
});

Deno.test("stop({ drainMs: 0 }) leaves lines not yet read in the pipe", async () => {
  const g = closedGate();
  const h = await harness(g.gate);
  try {
    // Two writes: the reader takes the first and holds it at the gate; the second waits.
    await h.writer.write(encoder.encode("first\n"));
    await g.waiting();
    await h.writer.write(encoder.encode("second\n"));
    const stopped = h.reader.stop({ drainMs: 0 });
    g.open();
    await stopped;
    assert.deepStrictEqual(h.delivered, ["first"]);
  } finally {
    await h.cleanup();
  }
});

Deno.test("a drain is bounded: past drainMs, stop() gives up on the pipe and says so", async () => {
  const g = closedGate();
  const h = await harness(g.gate);
  try {
    // The first batch waits at the gate for longer than the drain may take.
    await h.writer.write(encoder.encode("first\n"));
    await g.waiting();
    await h.writer.write(encoder.encode("second\n"));
    const started = Date.now();
    const stopped = h.reader.stop({ drainMs: 100 });
    await h.warned(/draining after 100 ms/);
    assert.ok(Date.now() - started >= 100);
    g.open();
    await stopped;
    assert.deepStrictEqual(h.delivered, ["first"]);
  } finally {
    await h.cleanup();
  }
});

Deno.test("with a writer holding the FIFO but writing nothing, stop() resolves at once", async () => {
  const h = await harness();
  try {
    await h.writer.write(encoder.encode("a\n"));
    await h.deliveredCount(1);
    const started = Date.now();
    await h.reader.stop({ drainMs: 5000 });
    const took = Date.now() - started;
    // The pipe is empty: a read that waits over a few idle checks ends the drain.
    assert.ok(took < 1000, `stop() took ${took} ms`);
    assert.deepStrictEqual(h.delivered, ["a"]);
  } finally {
    await h.cleanup();
  }
});

Deno.test("an unfinished line whose writer is still there at stop is not delivered, and is logged", async () => {
  const h = await harness();
  try {
    await h.writer.write(encoder.encode("whole\nhalf a li"));
    await h.deliveredCount(1);
    await h.reader.stop({ drainMs: 5000 });
    assert.deepStrictEqual(h.delivered, ["whole"]);
    assert.ok(
      h.warnings.some((w) => /9 bytes of a line that has no newline yet; not delivered/.test(w)),
      h.warnings.join("\n"),
    );
  } finally {
    await h.cleanup();
  }
});

Deno.test("lines a writer left in the pipe before closing are delivered by stop(), last line too", async () => {
  const g = closedGate();
  const h = await harness(g.gate);
  try {
    await h.writer.write(encoder.encode("one\n"));
    await g.waiting();
    await h.writer.write(encoder.encode("two\nthree"));
    h.writer.close();
    const stopped = h.reader.stop({ drainMs: 5000 });
    g.open();
    await stopped;
    // The writer closed, so its last line without a newline is complete (see README).
    assert.deepStrictEqual(h.delivered, ["one", "two", "three"]);
  } finally {
    await h.cleanup();
  }
});

Deno.test("SIGTERM right after writes succeed: the client gets every line, then Close 1001 (RFC 6455 §7.4.1)", async () => {
  // The handler waits a timer turn every 10 lines, so the server lags behind the writer.
  const server = await startServer({ args: [SLOW_FIFO] });
  try {
    const client = await connectWs(server.port);
    await server.waitForCount(OPEN_LOG, 1);
    const lines = numberedLines(2000, 100);
    // `cat` exits once the pipe has accepted its last write: to the writer, every line is
    // accepted. Up to a pipe's worth (64 KiB, 655 lines) is still unread at that moment.
    await server.writeFifo(lines.join("\n") + "\n");
    const status = await server.signal("SIGTERM");
    const closed = await client.closed;
    assert.equal(closed.code, GOING_AWAY);
    const got = client.pending();
    const log = server.stderr().split("\n").filter((l) => /^(warn|error)/.test(l)).join("\n");
    assert.equal(got.length, lines.length, `${got.length} of ${lines.length} before 1001\n${log}`);
    assert.deepStrictEqual(got, lines);
    assert.equal(status.code, 0, server.stderr());
  } finally {
    await server.stop();
  }
});

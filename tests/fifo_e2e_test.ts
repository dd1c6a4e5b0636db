// The FIFO end to end: lines written by other processes reach WebSocket clients of the real
// server — in bursts, across writers, without a final newline — and bad lines are dropped.

import assert from "node:assert/strict";
import { RawClient } from "./support/raw_client.ts";
import { type ServerProcess, withServer } from "./support/server_process.ts";

// Text is data: the test must not drop a leading U+FEFF either.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const OPEN_LOG = /connection \d+ open from/;

async function openClients(server: ServerProcess, count: number): Promise<RawClient[]> {
  const clients = await Promise.all(
    Array.from({ length: count }, () => RawClient.open(server.port)),
  );
  // A client counts as open for broadcast once the server has logged it.
  await server.waitForCount(OPEN_LOG, count);
  return clients;
}

async function nextText(client: RawClient): Promise<string> {
  const frame = await client.readFrame(10_000);
  assert.equal(frame.opcode, 0x1, "FIFO lines go out as text frames (RFC 6455 §5.6)");
  return decoder.decode(frame.payload);
}

/**
 * Waits until one of the server's threads blocks opening a FIFO with no writer (Linux shows
 * this as wchan "wait_for_partner"); where wchan is hidden, waits a generous moment instead.
 */
async function waitUntilOpeningFifo(pid: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    let visible = false;
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      let wchan = "";
      try {
        wchan = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/wchan`);
      } catch { /* the thread ended */ }
      if (wchan === "wait_for_partner") return;
      if (wchan !== "" && wchan !== "0") visible = true;
    }
    if (!visible) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}

Deno.test("a burst of 10,000 lines in one write reaches each of 50 clients, in order", () =>
  withServer([], async (server) => {
    const clients = await openClients(server, 50);
    try {
      const lines = Array.from({ length: 10_000 }, (_, i) => `line ${i} ${"·".repeat(i % 40)}`);
      await server.writeFifo(lines.join("\n") + "\n");
      await Promise.all(clients.map(async (client, c) => {
        for (let i = 0; i < lines.length; i++) {
          const got = await nextText(client);
          if (got !== lines[i]) assert.fail(`client ${c}: message ${i} is ${got}`);
        }
      }));
    } finally {
      for (const c of clients) c.close();
    }
  }));

Deno.test("after a writer closes, the next writer's lines arrive too (reopen on EOF)", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      for (let i = 0; i < 5; i++) {
        await server.writeFifo(`writer ${i}\n`);
        assert.equal(await nextText(client), `writer ${i}`);
      }
    } finally {
      client.close();
    }
  }));

Deno.test("writers that open, write and close back to back lose no line (the pipe always has a reader)", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    const count = 300;
    try {
      // Each `echo > fifo` is a writer of its own; none waits for the server in between.
      const script = `i=0; while [ $i -lt ${count} ]; do echo "w $i" > "$1"; i=$((i+1)); done`;
      const writers = new Deno.Command("sh", { args: ["-c", script, "sh", server.fifo] }).output();
      for (let i = 0; i < count; i++) assert.equal(await nextText(client), `w ${i}`);
      assert.ok((await writers).success);
    } finally {
      client.close();
    }
  }));

Deno.test("a non-blocking writer always finds a reader while the server runs, between writers too", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    const count = 300;
    try {
      // As the README's shell writer does: with no reader, the open fails (ENXIO) at once.
      const script = `i=0; fails=0; while [ $i -lt ${count} ]; do ` +
        `echo "nb $i" | dd of="$1" oflag=nonblock conv=nocreat status=none 2>/dev/null ` +
        `|| fails=$((fails+1)); i=$((i+1)); done; echo $fails`;
      const writers = new Deno.Command("sh", { args: ["-c", script, "sh", server.fifo] }).output();
      const out = await writers;
      assert.equal(
        new TextDecoder().decode(out.stdout).trim(),
        "0",
        "non-blocking opens that failed",
      );
      for (let i = 0; i < count; i++) assert.equal(await nextText(client), `nb ${i}`);
    } finally {
      client.close();
    }
  }));

Deno.test("a final line without a newline is delivered when its writer closes", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      await server.writeFifo("first\nno newline at the end");
      assert.equal(await nextText(client), "first");
      assert.equal(await nextText(client), "no newline at the end");
      await server.writeFifo("next writer\n");
      assert.equal(await nextText(client), "next writer");
    } finally {
      client.close();
    }
  }));

Deno.test("a FIFO line starting with U+FEFF reaches the client byte for byte", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      // printf '\xef\xbb\xbfhi\n' > fifo, in octal so that any POSIX sh's printf takes it.
      const out = await new Deno.Command("sh", {
        args: ["-c", String.raw`printf '\357\273\277hi\n' > "$1"`, "sh", server.fifo],
      }).output();
      assert.ok(out.success);
      const frame = await client.readFrame(10_000);
      assert.deepStrictEqual([...frame.payload], [0xef, 0xbb, 0xbf, 0x68, 0x69]);
      assert.equal(decoder.decode(frame.payload), "\uFEFFhi");
    } finally {
      client.close();
    }
  }));

Deno.test("a line over --max-message-size is dropped with one log line; later lines arrive", () =>
  withServer(["--max-message-size", "100"], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      const exact = "e".repeat(100);
      // One oversize line within a single read, one spanning several 64 KiB reads.
      await server.writeFifo(
        `before\n${"x".repeat(5000)}\n${exact}\n${"y".repeat(300_000)}\nafter\n`,
      );
      assert.equal(await nextText(client), "before");
      assert.equal(await nextText(client), exact);
      assert.equal(await nextText(client), "after");
      // stderr is a pipe of its own: the log may trail the WebSocket frames.
      await server.waitForCount(/over the limit/, 2);
      assert.equal(server.countLog(/over the limit/), 2, server.stderr());
    } finally {
      client.close();
    }
  }));

Deno.test("a line that is not valid UTF-8 is dropped and logged, never sent", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      const bad = new Uint8Array([0x62, 0x61, 0x64, 0xff, 0xfe, 0x0a]);
      const good = new TextEncoder().encode("good\n");
      const data = new Uint8Array([...new TextEncoder().encode("ok\n"), ...bad, ...good]);
      await server.writeFifo(data);
      assert.equal(await nextText(client), "ok");
      assert.equal(await nextText(client), "good");
      await server.waitForLog(/not valid UTF-8/);
      assert.equal(server.countLog(/not valid UTF-8/), 1, server.stderr());
    } finally {
      client.close();
    }
  }));

Deno.test("CRLF endings are trimmed and empty lines skipped", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      await server.writeFifo("crlf\r\n\n\r\nlf\n");
      assert.equal(await nextText(client), "crlf");
      assert.equal(await nextText(client), "lf");
    } finally {
      client.close();
    }
  }));

Deno.test("a plain file put in place of the FIFO is not read (over and over); a new FIFO is", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      // Keep the original FIFO open for writing while its path is replaced by a plain file,
      // as a writer that found the path missing would create it.
      const writer = await Deno.open(server.fifo, { write: true });
      await Deno.remove(server.fifo);
      await Deno.writeTextFile(server.fifo, "stale line from a plain file\n");
      await writer.write(new TextEncoder().encode("last line of the old FIFO\n"));
      writer.close();
      assert.equal(await nextText(client), "last line of the old FIFO");
      await server.waitForLog(/is not a FIFO/);
      // Put a FIFO back: the server picks it up and lines flow again.
      await Deno.remove(server.fifo);
      const made = await new Deno.Command("mkfifo", { args: [server.fifo] }).output();
      assert.ok(made.success);
      await server.writeFifo("through the new FIFO\n");
      assert.equal(await nextText(client), "through the new FIFO");
    } finally {
      client.close();
    }
  }));

Deno.test("a FIFO removed and created anew while the server waits for a writer is picked up", () =>
  withServer([], async (server) => {
    const [client] = await openClients(server, 1);
    try {
      await server.writeFifo("through the first FIFO\n");
      assert.equal(await nextText(client), "through the first FIFO");
      // Once the server waits in open() on the first FIFO, a deploy script replaces it.
      await waitUntilOpeningFifo(server.process.pid);
      await Deno.remove(server.fifo);
      const made = await new Deno.Command("mkfifo", { args: [server.fifo] }).output();
      assert.ok(made.success);
      // `cat >` blocks until someone opens the new FIFO for reading: the server, or else this
      // test after 10 s, so that a failure does not leave the writer hanging.
      const writing = server.writeFifo("through the replacement\n");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = await Promise.race([
        writing.then(() => false),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), 10_000)),
      ]);
      clearTimeout(timer);
      if (late) {
        const rescue = await Deno.open(server.fifo, { read: true });
        for await (const _ of rescue.readable) { /* drain until the writer closes */ }
        await writing;
        assert.fail("the server never opened the replacement FIFO");
      }
      assert.equal(await nextText(client), "through the replacement");
    } finally {
      client.close();
    }
  }));

// Tests one connection of the real server, in-process over a real socket: the stream stays
// whole when a slow consumer is closed, one Close ever, 1011 for our own bugs, TCP closed by the
// server first after the closing handshake, and a maximum-size message in 64-byte fragments.

import assert from "node:assert/strict";
import type { Handlers } from "../../lib/api/handlers.ts";
import type { CodecEvent } from "../../lib/protocol/codec.ts";
import { PushServer } from "../../lib/server/server.ts";
import type { ClientConnection } from "../../lib/server/connection.ts";
import { withInProcessServer } from "../support/in_process.ts";
import {
  clientFrame,
  closeBody,
  ConnectionClosed,
  parseClose,
  RawClient,
  type ServerFrame,
} from "../support/raw_client.ts";

const TEXT = 0x1;
const CLOSE = 0x8;
const CONTINUATION = 0x0;
const decoder = new TextDecoder();

const echo: Handlers = {
  text: (conn, text) => void conn.send(text),
  binary: (conn, data) => void conn.send(data),
};

/** Every frame until the server ends TCP. */
async function readAll(client: RawClient, timeoutMs = 10_000): Promise<ServerFrame[]> {
  const frames: ServerFrame[] = [];
  for (;;) {
    try {
      frames.push(await client.readFrame(timeoutMs));
    } catch (e) {
      if (e instanceof ConnectionClosed) return frames;
      throw new Error(`${e} (after ${frames.length} frames)`);
    }
  }
}

const inProcess = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "a slow consumer's stream ends in whole frames and exactly one Close 4000 (RFC 6455 §5.2, §5.5.1)",
  ...inProcess,
  fn: () =>
    withInProcessServer({
      args: ["--max-queue", "256KiB", "--max-message-size", "64KiB", "--close-timeout", "5s"],
      handlers: echo,
    }, async ({ port }) => {
      const CLIENTS = 20;
      // About 35 echoes fill the kernel's buffers and the 256 KiB queue; 40 left so thin a
      // margin that a loaded run sometimes buffered every echo, and no Close ever came.
      const MESSAGES = 120;
      const clients = await Promise.all(
        Array.from({ length: CLIENTS }, () => RawClient.open(port)),
      );
      try {
        await Promise.all(clients.map(async (client, c) => {
          // Payloads of 16,385-16,398 bytes: just over the size that is framed as one array.
          const size = 16_385 + (c % 14);
          const sent: string[] = [];
          const frames: Uint8Array[] = [];
          for (let i = 0; i < MESSAGES; i++) {
            const text = `${c}:${i}:`.padEnd(size, String.fromCharCode(97 + (i % 26)));
            sent.push(text);
            frames.push(clientFrame({ opcode: TEXT, payload: text }));
          }
          // Never read while sending: the echoes pile up until the server gives up on us.
          for (const f of frames) {
            try {
              await client.write(f);
            } catch {
              break; // The server may be gone already.
            }
          }
          const got = await readAll(client);
          const closes = got.filter((f) => f.opcode === CLOSE);
          assert.equal(closes.length, 1, `client ${c}: exactly one Close`);
          assert.equal(got.at(-1)?.opcode, CLOSE, `client ${c}: the Close comes last`);
          assert.deepStrictEqual(parseClose(closes[0].payload), {
            code: 4000,
            reason: "slow consumer",
          });
          const texts = got.slice(0, -1);
          texts.forEach((f, i) => {
            assert.equal(f.opcode, TEXT, `client ${c}: frame ${i} is text`);
            assert.equal(decoder.decode(f.payload), sent[i], `client ${c}: frame ${i} whole`);
          });
        }));
      } finally {
        for (const c of clients) c.close();
      }
    }),
});

/** A server whose own code fails (not a handler: those errors are caught and logged). */
class FaultyServer extends PushServer {
  override event(conn: ClientConnection, event: CodecEvent): void | Promise<void> {
    if (event.type === "text" && event.data === "boom") throw new Error("injected fault");
    return super.event(conn, event);
  }
}

Deno.test({
  name: "our own exception closes that connection with 1011 and no reason; others are served",
  ...inProcess,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const fifo = `${dir}/push.fifo`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const { parseCommandLine } = await import("../../lib/api/options.ts");
    const parsed = parseCommandLine(["--port", "0", "--fifo", fifo], () => undefined);
    if (parsed.kind !== "run") throw new Error("options");
    const errors: string[] = [];
    const log = {
      error: (m: string) => errors.push(m),
      warn: () => {},
      info: () => {},
      debug: () => {},
    };
    const server = new FaultyServer(parsed.options, { handlers: echo, log });
    const { port } = await server.start();
    const victim = await RawClient.open(port);
    const bystander = await RawClient.open(port);
    try {
      await victim.sendFrame({ opcode: TEXT, payload: "boom" });
      const close = await victim.readFrame();
      assert.equal(close.opcode, CLOSE);
      assert.deepStrictEqual(parseClose(close.payload), { code: 1011, reason: "" });
      assert.match(errors.join("\n"), /internal error, closing with 1011: Error: injected fault/);
      await bystander.sendFrame({ opcode: TEXT, payload: "still served" });
      const reply = await bystander.readFrame();
      assert.equal(decoder.decode(reply.payload), "still served");
    } finally {
      victim.close();
      bystander.close();
      await server.shutdown();
      const w = await Deno.open(fifo, { read: true, write: true });
      w.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "after the closing handshake the server closes TCP first (RFC 6455 §7.1.1)",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--close-timeout", "20s"] }, async ({ port }) => {
      const client = await RawClient.open(port);
      try {
        await client.sendFrame({ opcode: CLOSE, payload: closeBody(1000) });
        const echoed = await client.readFrame();
        assert.equal(echoed.opcode, CLOSE);
        // We keep our socket open; the server must not wait for our FIN (20 s close timeout).
        assert.equal(await client.closedWithin(2000), true, "the server closed TCP");
      } finally {
        client.close();
      }
    }),
});

Deno.test({
  name: "shutdown does not wait for the FIN of clients that answered the 1001 (RFC 6455 §7.1.1)",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--shutdown-timeout", "20s"] }, async ({ port, server }) => {
      const clients = await Promise.all([1, 2, 3].map(() => RawClient.open(port)));
      try {
        const started = Date.now();
        const stopping = server.shutdown();
        for (const c of clients) {
          const close = await c.readFrame();
          assert.equal(parseClose(close.payload).code, 1001);
          await c.sendFrame({ opcode: CLOSE, payload: closeBody(1001) });
        }
        await stopping;
        assert.ok(Date.now() - started < 5000, `shutdown took ${Date.now() - started} ms`);
      } finally {
        for (const c of clients) c.close();
      }
    }),
});

Deno.test({
  name:
    "a maximum-size message in 64-byte fragments is echoed with the defaults (Autobahn 9.3.1, RFC 6455 §5.4)",
  ...inProcess,
  fn: () =>
    withInProcessServer(
      { args: ["--max-message-size", "4MiB"], handlers: echo },
      async ({ port }) => {
        const client = await RawClient.open(port);
        try {
          const size = 4 * 1024 * 1024;
          const piece = "x".repeat(64);
          const frames: Uint8Array[] = [clientFrame({ opcode: TEXT, payload: piece, fin: false })];
          for (let i = 1; i < size / 64; i++) {
            frames.push(clientFrame({ opcode: CONTINUATION, payload: piece, fin: false }));
          }
          frames.push(clientFrame({ opcode: CONTINUATION, payload: "" }));
          const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
          let at = 0;
          for (const f of frames) {
            all.set(f, at);
            at += f.length;
          }
          await client.write(all);
          const reply = await client.readFrame(20_000);
          assert.equal(reply.opcode, TEXT);
          assert.equal(reply.payload.length, size);
        } finally {
          client.close();
        }
      },
    ),
});

Deno.test({
  name: "a message over the limit is closed with 1009 and a reason (RFC 6455 §7.4.1)",
  ...inProcess,
  fn: () =>
    withInProcessServer(
      { args: ["--max-message-size", "1KiB"], handlers: echo },
      async ({ port }) => {
        const client = await RawClient.open(port);
        try {
          await client.sendFrame({ opcode: TEXT, payload: "y".repeat(2048) });
          const close = await client.readFrame();
          assert.deepStrictEqual(parseClose(close.payload), {
            code: 1009,
            reason: "message over 1024 bytes",
          });
        } finally {
          client.close();
        }
      },
    ),
});

Deno.test({
  name:
    "replies from two clients echoed across many slab views arrive whole and in order (RFC 6455 §5.4)",
  ...inProcess,
  fn: () =>
    withInProcessServer({ handlers: echo }, async ({ port }) => {
      // Each reply is written at once, from a view of the shared slab (16 KiB); 2 × 200 replies
      // of ~300 B fill several slabs, interleaved between the two clients.
      const clients = [await RawClient.open(port), await RawClient.open(port)];
      try {
        for (let i = 0; i < 200; i++) {
          for (const [n, client] of clients.entries()) {
            const text = `${n}:${i}:${"é".repeat(140)}`;
            await client.sendFrame({ opcode: TEXT, payload: new TextEncoder().encode(text) });
            const reply = await client.readFrame();
            assert.equal(reply.opcode, TEXT);
            assert.equal(decoder.decode(reply.payload), text);
          }
        }
      } finally {
        for (const c of clients) c.close();
      }
    }),
});

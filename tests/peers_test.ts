// Independent WebSocket implementations — npm:ws and Deno's built-in WebSocket — against the
// real server running `echo`: sizes across every length encoding, fragments, pings, close codes.

import assert from "node:assert/strict";
import { startServer, withEcho } from "./support/server_process.ts";
import { connectWs, type WsClient } from "./support/ws_client.ts";

const CLOSING = new URL("./fixtures/closing_handlers.ts", import.meta.url).pathname;
const SIZES = [0, 125, 126, 65535, 65536, 16 * 1024 * 1024];
const TIMEOUT_MS = 20_000;

function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 131 + 17) & 0xff;
  return out;
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** An npm:ws client (one of tests/support/ws_client.ts) that takes 16 MiB messages. */
function openWs(port: number): Promise<WsClient> {
  return withTimeout(connectWs(port, "/", { maxPayload: 64 * 1024 * 1024 }), "ws open");
}

Deno.test("npm:ws: text and binary of every length encoding are echoed (RFC 6455 §5.2)", () =>
  withEcho(async (server) => {
    const ws = await openWs(server.port);
    try {
      for (const n of SIZES) {
        const text = "é".repeat(Math.floor(n / 2)) + "x".repeat(n % 2);
        ws.ws.send(text);
        const got = await ws.next(TIMEOUT_MS);
        assert.equal(typeof got, "string", `${n}-byte text comes back as text`);
        assert.equal(got, text, `${n}-byte text`);
        const bin = pattern(n);
        ws.ws.send(bin);
        const back = await ws.next(TIMEOUT_MS);
        assert.ok(back instanceof Uint8Array, `${n}-byte binary comes back as binary`);
        assert.ok(Buffer.from(back).equals(Buffer.from(bin)), `${n}-byte binary`);
      }
    } finally {
      ws.ws.terminate();
    }
  }));

Deno.test("npm:ws: a message sent in fragments is echoed whole (RFC 6455 §5.4)", () =>
  withEcho(async (server) => {
    const ws = await openWs(server.port);
    try {
      ws.ws.send("one ", { fin: false });
      ws.ws.send("two ", { fin: false });
      ws.ws.send("three", { fin: true });
      assert.equal(await ws.next(TIMEOUT_MS), "one two three");
      const big = pattern(200_000);
      ws.ws.send(big.subarray(0, 70_000), { fin: false, binary: true });
      ws.ws.send(big.subarray(70_000), { fin: true, binary: true });
      const back = await ws.next(TIMEOUT_MS);
      assert.ok(back instanceof Uint8Array, "binary comes back as binary");
      assert.ok(Buffer.from(back).equals(Buffer.from(big)));
    } finally {
      ws.ws.terminate();
    }
  }));

Deno.test("npm:ws: ping() gets a pong with the same payload (RFC 6455 §5.5.2)", () =>
  withEcho(async (server) => {
    const ws = await openWs(server.port);
    try {
      for (const payload of ["", "hello", "x".repeat(125)]) {
        const pong = new Promise<string>((resolve) =>
          ws.ws.once("pong", (data: Buffer) => resolve(data.toString()))
        );
        ws.ws.ping(payload);
        assert.equal(await withTimeout(pong, "pong"), payload);
      }
    } finally {
      ws.ws.terminate();
    }
  }));

for (const code of [1000, 3000, 4999]) {
  Deno.test(`npm:ws: closing with ${code} gets ${code} back (RFC 6455 §5.5.1, §7.4)`, () =>
    withEcho(async (server) => {
      const ws = await openWs(server.port);
      ws.ws.close(code, "done here");
      const closed = await withTimeout(ws.closed, "close");
      assert.equal(closed.code, code);
    }));
}

Deno.test("npm:ws: a message over --max-message-size gets 1009 (RFC 6455 §7.4.1, §10.4)", () =>
  withEcho(async (server) => {
    const ws = await openWs(server.port);
    ws.ws.send(new Uint8Array(16 * 1024 * 1024 + 1));
    const closed = await withTimeout(ws.closed, "close");
    assert.equal(closed.code, 1009);
  }));

/** A Deno built-in WebSocket with its messages queued. */
async function denoSocket(port: number) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
  socket.binaryType = "arraybuffer";
  const messages: (string | ArrayBuffer)[] = [];
  const waiters: (() => void)[] = [];
  socket.onmessage = (e) => {
    messages.push(e.data);
    for (const w of waiters.splice(0)) w();
  };
  const closed = new Promise<CloseEvent>((resolve) => {
    socket.onclose = (e) => {
      resolve(e);
      for (const w of waiters.splice(0)) w();
    };
  });
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("Deno WebSocket failed to open"));
    }),
    "Deno WebSocket open",
  );
  const next = () =>
    withTimeout(
      (async () => {
        while (messages.length === 0) {
          if (socket.readyState === WebSocket.CLOSED) throw new Error("socket closed");
          await new Promise<void>((resolve) => waiters.push(resolve));
        }
        return messages.shift()!;
      })(),
      "Deno WebSocket message",
    );
  return { socket, next, closed };
}

Deno.test("Deno WebSocket: text and binary of every length encoding are echoed (RFC 6455 §5.2)", () =>
  withEcho(async (server) => {
    const { socket, next, closed } = await denoSocket(server.port);
    try {
      for (const n of SIZES) {
        const text = "ü".repeat(Math.floor(n / 2)) + "y".repeat(n % 2);
        socket.send(text);
        assert.equal(await next(), text, `${n}-byte text`);
        const bin = pattern(n);
        socket.send(bin);
        const back = await next();
        assert.ok(back instanceof ArrayBuffer, `${n}-byte binary comes back as binary`);
        assert.ok(Buffer.from(back).equals(Buffer.from(bin)), `${n}-byte binary`);
      }
    } finally {
      socket.close();
      await withTimeout(closed, "close");
    }
  }));

for (const code of [1000, 3000, 4999]) {
  Deno.test(`Deno WebSocket: closing with ${code} gets ${code} back (RFC 6455 §5.5.1)`, () =>
    withEcho(async (server) => {
      const { socket, closed } = await denoSocket(server.port);
      socket.close(code, "bye");
      const event = await withTimeout(closed, "close");
      assert.equal(event.code, code);
      assert.equal(event.wasClean, true);
    }));
}

Deno.test("npm:ws: a FIFO line reaches a connected ws client", async () => {
  const server = await startServer();
  try {
    const ws = await openWs(server.port);
    await ws.roundTrip();
    await server.writeFifo("pushed to ws\n");
    assert.equal(await ws.next(TIMEOUT_MS), "pushed to ws");
    ws.ws.close(1000);
    await withTimeout(ws.closed, "close");
  } finally {
    await server.stop();
  }
});

Deno.test("npm:ws: a close started by the server's handler arrives with its code and reason (RFC 6455 §7.1.2)", async () => {
  const server = await startServer({ args: [CLOSING] });
  try {
    const ws = await openWs(server.port);
    // Another client hears, from the close handler, how ws's connection ended.
    const observer = await openWs(server.port);
    await observer.roundTrip();
    ws.ws.send("close me");
    const id = String(await ws.next(TIMEOUT_MS));
    const closed = await withTimeout(ws.closed, "close");
    assert.deepEqual(closed, { code: 4000, reason: "as asked" });
    // ws answers the Close (with its code and reason), so the close is clean.
    const report = await observer.next(TIMEOUT_MS);
    assert.equal(report, `closed ${id.slice(3)} 4000 as asked true`);
    observer.ws.terminate();
  } finally {
    await server.stop();
  }
});

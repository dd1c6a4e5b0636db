// Independent WebSocket implementations — npm:ws and Deno's built-in WebSocket — against the
// real server running `echo`: sizes across every length encoding, fragments, pings, close codes.

import assert from "node:assert/strict";
// @ts-types="@types/ws"
import { WebSocket as WsClient } from "ws";
import { startServer, withEcho } from "./support/server_process.ts";

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

/** An npm:ws client whose messages are awaited one at a time. */
class Ws {
  readonly socket: WsClient;
  #messages: { data: Uint8Array; isBinary: boolean }[] = [];
  #waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(socket: WsClient) {
    this.socket = socket;
    socket.on("message", (data, isBinary) => {
      this.#messages.push({ data: new Uint8Array(data as Buffer), isBinary });
      this.#wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.#wake();
      });
    });
  }

  static open(port: number): Promise<Ws> {
    const socket = new WsClient(`ws://127.0.0.1:${port}/`, { maxPayload: 64 * 1024 * 1024 });
    return withTimeout(
      new Promise((resolve, reject) => {
        socket.once("open", () => resolve(new Ws(socket)));
        socket.once("error", reject);
      }),
      "ws open",
    );
  }

  /** Pings and waits for the pong: the server has registered the connection for broadcasts. */
  roundTrip(): Promise<void> {
    const pong = new Promise<void>((resolve) => this.socket.once("pong", () => resolve()));
    this.socket.ping();
    return withTimeout(pong, "pong");
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  next(): Promise<{ data: Uint8Array; isBinary: boolean }> {
    return withTimeout(
      (async () => {
        while (this.#messages.length === 0) {
          if (this.socket.readyState === WsClient.CLOSED) throw new Error("ws closed");
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
        return this.#messages.shift()!;
      })(),
      "ws message",
    );
  }
}

Deno.test("npm:ws: text and binary of every length encoding are echoed (RFC 6455 §5.2)", () =>
  withEcho(async (server) => {
    const ws = await Ws.open(server.port);
    try {
      for (const n of SIZES) {
        const text = "é".repeat(Math.floor(n / 2)) + "x".repeat(n % 2);
        ws.socket.send(text);
        const got = await ws.next();
        assert.equal(got.isBinary, false, `${n}-byte text comes back as text`);
        assert.equal(new TextDecoder().decode(got.data), text, `${n}-byte text`);
        const bin = pattern(n);
        ws.socket.send(bin);
        const back = await ws.next();
        assert.equal(back.isBinary, true, `${n}-byte binary comes back as binary`);
        assert.ok(Buffer.from(back.data).equals(Buffer.from(bin)), `${n}-byte binary`);
      }
    } finally {
      ws.socket.terminate();
    }
  }));

Deno.test("npm:ws: a message sent in fragments is echoed whole (RFC 6455 §5.4)", () =>
  withEcho(async (server) => {
    const ws = await Ws.open(server.port);
    try {
      ws.socket.send("one ", { fin: false });
      ws.socket.send("two ", { fin: false });
      ws.socket.send("three", { fin: true });
      assert.equal(new TextDecoder().decode((await ws.next()).data), "one two three");
      const big = pattern(200_000);
      ws.socket.send(big.subarray(0, 70_000), { fin: false, binary: true });
      ws.socket.send(big.subarray(70_000), { fin: true, binary: true });
      const back = await ws.next();
      assert.equal(back.isBinary, true);
      assert.ok(Buffer.from(back.data).equals(Buffer.from(big)));
    } finally {
      ws.socket.terminate();
    }
  }));

Deno.test("npm:ws: ping() gets a pong with the same payload (RFC 6455 §5.5.2)", () =>
  withEcho(async (server) => {
    const ws = await Ws.open(server.port);
    try {
      for (const payload of ["", "hello", "x".repeat(125)]) {
        const pong = new Promise<string>((resolve) =>
          ws.socket.once("pong", (data: Buffer) => resolve(data.toString()))
        );
        ws.socket.ping(payload);
        assert.equal(await withTimeout(pong, "pong"), payload);
      }
    } finally {
      ws.socket.terminate();
    }
  }));

for (const code of [1000, 3000, 4999]) {
  Deno.test(`npm:ws: closing with ${code} gets ${code} back (RFC 6455 §5.5.1, §7.4)`, () =>
    withEcho(async (server) => {
      const ws = await Ws.open(server.port);
      ws.socket.close(code, "done here");
      const closed = await withTimeout(ws.closed, "close");
      assert.equal(closed.code, code);
    }));
}

Deno.test("npm:ws: a message over --max-message-size gets 1009 (RFC 6455 §7.4.1, §10.4)", () =>
  withEcho(async (server) => {
    const ws = await Ws.open(server.port);
    ws.socket.send(new Uint8Array(16 * 1024 * 1024 + 1));
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
    const ws = await Ws.open(server.port);
    await ws.roundTrip();
    await server.writeFifo("pushed to ws\n");
    assert.equal(new TextDecoder().decode((await ws.next()).data), "pushed to ws");
    ws.socket.close(1000);
    await withTimeout(ws.closed, "close");
  } finally {
    await server.stop();
  }
});

Deno.test("npm:ws: a close started by the server's handler arrives with its code and reason (RFC 6455 §7.1.2)", async () => {
  const server = await startServer({ args: [CLOSING] });
  try {
    const ws = await Ws.open(server.port);
    // Another client hears, from the close handler, how ws's connection ended.
    const observer = await Ws.open(server.port);
    await observer.roundTrip();
    ws.socket.send("close me");
    const id = new TextDecoder().decode((await ws.next()).data);
    const closed = await withTimeout(ws.closed, "close");
    assert.deepEqual(closed, { code: 4000, reason: "as asked" });
    // ws answers the Close (with its code and reason), so the close is clean.
    const report = new TextDecoder().decode((await observer.next()).data);
    assert.equal(report, `closed ${id.slice(3)} 4000 as asked true`);
    observer.socket.terminate();
  } finally {
    await server.stop();
  }
});

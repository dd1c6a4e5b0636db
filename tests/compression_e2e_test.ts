// Tests permessage-deflate through the real server in-process (RFC 7692): negotiation at the
// handshake, a mixed broadcast compressed once and framed once per form, npm:ws compressing
// both ways through echo handlers (Autobahn 12.*/13.* ground), the zip bomb, RSV1 without the
// extension, and headless Chromium, which offers permessage-deflate by default.

import assert from "node:assert/strict";
import { WebSocket as WsClient } from "ws";
import type { Handlers } from "../lib/api/handlers.ts";
import { CloseCode } from "../lib/protocol/close_codes.ts";
import { compressMessage, inflateMessage, inflateText } from "../lib/protocol/deflate.ts";
import { Opcode } from "../lib/protocol/frame.ts";
import { chromiumFor, launchChromium, serveBlankPage } from "./support/browser.ts";
import { type InProcessServer, withInProcessServer } from "./support/in_process.ts";
import { parsePushMessage } from "./support/push_v1.ts";
import {
  clientFrame,
  parseClose,
  RawClient,
  type ServerFrame,
  upgradeRequest,
} from "./support/raw_client.ts";

const inProcess = { sanitizeOps: false, sanitizeResources: false };
const MIB = 1 << 20;
/** RSV1 as the raw client reports it (RSV1 RSV2 RSV3 → 4 2 1). */
const RSV1 = 4;
const AGREED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
const LINE = JSON.stringify({ items: Array.from({ length: 400 }, (_, i) => ({ id: i, v: "x" })) });
const decoder = new TextDecoder();

/** Handlers that count opened connections, so a test can wait until `n` are open. */
function openCounter(
  extra: Handlers = {},
): { handlers: Handlers; opened: (n: number) => Promise<void> } {
  let count = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const handlers: Handlers = {
    ...extra,
    open: () => {
      count++;
      for (const w of waiters.filter((w) => count >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
  };
  const opened = (n: number) =>
    count >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
  return { handlers, opened };
}

/** Echo handlers: every message comes back as it was received (text or binary). */
const ECHO: Handlers = {
  text: (conn, text) => void conn.send(text),
  binary: (conn, data) => void conn.send(data),
};

async function writeFifo(fifo: string, text: string): Promise<void> {
  const f = await Deno.open(fifo, { write: true });
  try {
    const bytes = new TextEncoder().encode(text);
    let done = 0;
    while (done < bytes.length) done += await f.write(bytes.subarray(done));
  } finally {
    f.close();
  }
}

/** A raw client that offers `offer` (null: no extension header); checks the answer. */
async function rawClient(port: number, offer: string | null): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.write(upgradeRequest({ headers: { "Sec-WebSocket-Extensions": offer } }));
  const res = await c.readResponse();
  assert.equal(res.status, 101);
  const agreed = res.headers.get("sec-websocket-extensions");
  if (offer?.includes("permessage-deflate")) assert.ok(agreed?.startsWith(AGREED), `${agreed}`);
  else assert.equal(agreed, undefined);
  return c;
}

function textOf(frame: ServerFrame): string {
  if (frame.rsv === 0) return decoder.decode(frame.payload);
  const r = inflateText(frame.payload, { maxMessageSize: 16 * MIB });
  if (!r.ok) throw new Error(r.reason);
  return r.text;
}

Deno.test({
  name:
    "a FIFO line goes to deflate clients compressed (RSV1) and to plain ones plain, compressed once (RFC 7692 §6, §7.1.1.1)",
  ...inProcess,
  async fn() {
    const { handlers, opened } = openCounter();
    await withInProcessServer({ handlers }, async ({ server, port, fifo }) => {
      const deflate = [
        await rawClient(port, "permessage-deflate"),
        await rawClient(port, "permessage-deflate; client_max_window_bits"),
        await rawClient(port, "x-unknown, permessage-deflate"),
      ];
      const plain = [await rawClient(port, null), await rawClient(port, "x-unknown")];
      await opened(5);
      const before = server.stats.compressions;
      await writeFifo(fifo, `${LINE}\nshort\n`);
      for (const c of deflate) {
        const f = await c.readFrame();
        assert.equal(f.rsv, RSV1);
        assert.equal(f.opcode, Opcode.TEXT);
        assert.ok(f.payload.length < LINE.length / 3, `${f.payload.length} bytes`);
        assert.equal(textOf(f), LINE);
        const short = await c.readFrame();
        assert.deepEqual([short.rsv, textOf(short)], [0, "short"]);
      }
      for (const c of plain) {
        const f = await c.readFrame();
        assert.deepEqual([f.rsv, decoder.decode(f.payload)], [0, LINE]);
      }
      // Once for three deflate clients; "short" is under the threshold.
      assert.equal(server.stats.compressions - before, 1);
      for (const c of [...deflate, ...plain]) c.close();
    });
  },
});

Deno.test({
  name:
    "server.broadcast compresses a text and a binary message once for all deflate clients (RFC 7692 §6)",
  ...inProcess,
  async fn() {
    const { handlers, opened } = openCounter();
    await withInProcessServer({ handlers }, async ({ server, port }) => {
      const clients = [
        await rawClient(port, "permessage-deflate"),
        await rawClient(port, "permessage-deflate"),
        await rawClient(port, null),
      ];
      await opened(3);
      const before = server.stats.compressions;
      const binary = new TextEncoder().encode(LINE);
      assert.equal(server.broadcast(LINE), 3);
      assert.equal(server.broadcast(binary), 3);
      assert.equal(server.stats.compressions - before, 2);
      for (const [i, c] of clients.entries()) {
        const t = await c.readFrame();
        const b = await c.readFrame();
        assert.equal(t.rsv, i < 2 ? RSV1 : 0);
        assert.equal(b.rsv, i < 2 ? RSV1 : 0);
        assert.equal(textOf(t), LINE);
        assert.equal(b.opcode, Opcode.BINARY);
        const data = b.rsv ? inflateMessage(b.payload, { maxMessageSize: MIB }) : null;
        assert.deepEqual(data ? data : { ok: true, data: b.payload }, { ok: true, data: binary });
      }
      for (const c of clients) c.close();
    });
  },
});

Deno.test({
  name: "--compression off: the offer is declined and frames go out plain (RFC 7692 §5)",
  ...inProcess,
  async fn() {
    const { handlers, opened } = openCounter();
    await withInProcessServer({ args: ["--compression", "off"], handlers }, async (s) => {
      const c = await RawClient.connect(s.port);
      await c.write(
        upgradeRequest({ headers: { "Sec-WebSocket-Extensions": "permessage-deflate" } }),
      );
      const res = await c.readResponse();
      assert.equal(res.status, 101);
      assert.equal(res.headers.get("sec-websocket-extensions"), undefined);
      await opened(1);
      await writeFifo(s.fifo, LINE + "\n");
      const f = await c.readFrame();
      assert.deepEqual([f.rsv, decoder.decode(f.payload)], [0, LINE]);
      assert.equal(s.server.stats.compressions, 0);
      c.close();
    });
  },
});

/** Sends one client frame and returns the Close the server answers with. */
async function closeAfter(c: RawClient, frames: Uint8Array[]): Promise<{ code: number }> {
  for (const f of frames) await c.write(f);
  for (;;) {
    const f = await c.readFrame();
    if (f.opcode === Opcode.CLOSE) return parseClose(f.payload);
  }
}

Deno.test({
  name: "RSV1 without permessage-deflate negotiated closes with 1002 (RFC 6455 §5.2)",
  ...inProcess,
  async fn() {
    await withInProcessServer({ handlers: ECHO }, async ({ port }) => {
      const c = await rawClient(port, null);
      const frame = clientFrame({
        opcode: Opcode.TEXT,
        rsv: RSV1,
        payload: compressMessage(new TextEncoder().encode("hi")),
      });
      assert.equal((await closeAfter(c, [frame])).code, CloseCode.PROTOCOL_ERROR);
      c.close();
    });
  },
});

Deno.test({
  name: "RSV1 on a ping closes a deflate connection with 1002 (RFC 7692 §6.1)",
  ...inProcess,
  async fn() {
    await withInProcessServer({ handlers: ECHO }, async ({ port }) => {
      const c = await rawClient(port, "permessage-deflate");
      const frame = clientFrame({ opcode: Opcode.PING, rsv: RSV1 });
      assert.equal((await closeAfter(c, [frame])).code, CloseCode.PROTOCOL_ERROR);
      c.close();
    });
  },
});

Deno.test({
  name:
    "a zip bomb in fragments closes with 1009 at --max-message-size, inflated bytes counted (RFC 7692 §8.1)",
  ...inProcess,
  async fn() {
    await withInProcessServer(
      { args: ["--max-message-size", "1MiB"], handlers: ECHO },
      async (s) => {
        const c = await rawClient(s.port, "permessage-deflate");
        const bomb = compressMessage(new Uint8Array(64 * MIB), { level: 9 });
        assert.ok(bomb.length < 100_000);
        const half = bomb.length >> 1;
        const frames = [
          clientFrame({
            opcode: Opcode.BINARY,
            rsv: RSV1,
            fin: false,
            payload: bomb.subarray(0, half),
          }),
          clientFrame({ opcode: Opcode.CONTINUATION, payload: bomb.subarray(half) }),
        ];
        assert.equal((await closeAfter(c, frames)).code, CloseCode.MESSAGE_TOO_BIG);
        c.close();
      },
    );
  },
});

// ---- npm:ws with perMessageDeflate, both ways, through echo handlers ----

async function wsOpen(port: number, perMessageDeflate: object | false): Promise<WsClient> {
  const ws = new WsClient(`ws://127.0.0.1:${port}/`, { perMessageDeflate, maxPayload: 64 * MIB });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return ws;
}

/** Sends `pieces` as one message (fragmented when several) and returns the echo. */
function echo(ws: WsClient, pieces: (string | Uint8Array)[]): Promise<string | Uint8Array> {
  const reply = new Promise<string | Uint8Array>((resolve, reject) => {
    ws.once("message", (data, isBinary) => {
      resolve(isBinary ? new Uint8Array(data as ArrayBuffer) : String(data));
    });
    ws.once("close", (code) => reject(new Error(`closed with ${code}`)));
  });
  pieces.forEach((p, i) => ws.send(p, { fin: i === pieces.length - 1 }));
  return reply;
}

async function wsClose(ws: WsClient): Promise<void> {
  const closed = new Promise((resolve) => ws.once("close", resolve));
  ws.close(1000);
  await closed;
}

const textOfSize = (n: number) => "ab".repeat(Math.ceil(n / 2)).slice(0, n);

async function echoAll(s: InProcessServer, options: object): Promise<void> {
  const ws = await wsOpen(s.port, { threshold: 0, ...options });
  assert.equal(ws.extensions, "permessage-deflate");
  for (const n of [16, 4096, 65536, MIB]) {
    const text = textOfSize(n);
    const what = `${JSON.stringify(options)} ${n} B`;
    assert.equal(await echo(ws, [text]), text, what);
    const q = n >> 2;
    assert.equal(
      await echo(ws, [text.slice(0, q), text.slice(q, 2 * q), text.slice(2 * q)]),
      text,
      `${what} in 3 fragments`,
    );
  }
  const binary = new Uint8Array(100_000).map((_, i) => i % 7);
  assert.deepEqual(await echo(ws, [binary]), binary);
  await wsClose(ws);
}

Deno.test({
  name:
    "ws compresses to the server and inflates its replies, 16 B–1 MiB, fragmented too, with window bits offered (RFC 7692 §7.2, Autobahn 12.*, 13.*)",
  ...inProcess,
  async fn() {
    await withInProcessServer(
      { args: ["--max-message-size", "4MiB"], handlers: ECHO },
      async (s) => {
        const before = s.server.stats.compressions;
        for (
          const options of [
            {},
            { serverNoContextTakeover: true, clientNoContextTakeover: true },
            { serverMaxWindowBits: 9 },
            { serverMaxWindowBits: 12, clientMaxWindowBits: 10 },
            { clientMaxWindowBits: 8 },
            { serverMaxWindowBits: 8 },
          ]
        ) {
          await echoAll(s, options);
        }
        // Replies of 4 KiB and more, text and binary, went out compressed (window 8: plain).
        assert.ok(s.server.stats.compressions - before >= 5 * 7, `${s.server.stats.compressions}`);
      },
    );
  },
});

Deno.test({
  name: "ws without perMessageDeflate gets no extension and plain replies (RFC 7692 §5)",
  ...inProcess,
  async fn() {
    await withInProcessServer({ handlers: ECHO }, async (s) => {
      const ws = await wsOpen(s.port, false);
      assert.equal(ws.extensions, "");
      assert.equal(await echo(ws, [LINE]), LINE);
      assert.equal(s.server.stats.compressions, 0);
      await wsClose(ws);
    });
  },
});

// ---- real Chromium, which offers permessage-deflate on every connection ----

const CHROMIUM = chromiumFor("Chromium permessage-deflate test");

Deno.test({
  name:
    "Chromium negotiates permessage-deflate; a 200 KB FIFO line arrives intact and went out compressed (RFC 7692)",
  ignore: CHROMIUM === null,
  ...inProcess,
  async fn() {
    const { handlers, opened } = openCounter();
    await withInProcessServer({ handlers, args: ["--page", "off"] }, async (s) => {
      const site = serveBlankPage();
      const browser = await launchChromium(CHROMIUM!);
      try {
        const tab = await browser.newPage();
        await tab.goto(site.url);
        const extensions = await tab.evaluate(
          (url: string) =>
            new Promise<string>((resolve, reject) => {
              const ws = new WebSocket(url);
              const g = globalThis as unknown as { received: Promise<string> };
              g.received = new Promise((done) => (ws.onmessage = (e) => done(String(e.data))));
              ws.onopen = () => resolve(ws.extensions);
              ws.onerror = () => reject(new Error("the page's WebSocket failed"));
            }),
          `ws://127.0.0.1:${s.port}/`,
        );
        assert.match(
          extensions,
          /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/,
        );
        await opened(1);
        const before = s.server.stats.compressions;
        const sentBefore = s.server.stats.bytesOut;
        const line = JSON.stringify(Array.from({ length: 8000 }, (_, i) => ({ n: i, s: "héllo" })));
        await writeFifo(s.fifo, line + "\n");
        const received = await tab.evaluate(() =>
          (globalThis as unknown as { received: Promise<string> }).received
        );
        assert.equal(received, line);
        assert.equal(s.server.stats.compressions - before, 1);
        // On the wire: well under the line's size.
        assert.ok(s.server.stats.bytesOut - sentBefore < line.length / 3);
      } finally {
        await browser.close();
        await site.shutdown();
      }
    });
  },
});

Deno.test({
  name:
    "a channel publication to push.v1 subscribers is compressed once for all of them (RFC 7692 §7.1.1.1)",
  ...inProcess,
  async fn() {
    await withInProcessServer({}, async (s) => {
      const clients: WsClient[] = [];
      for (const perMessageDeflate of [{}, {}, false]) {
        const ws = new WsClient(`ws://127.0.0.1:${s.port}/`, "push.v1", { perMessageDeflate });
        const messages: string[] = [];
        const subscribed = new Promise<void>((resolve, reject) => {
          ws.on("message", (d) => {
            messages.push(String(d));
            if (parsePushMessage(d).type === "subscribed") resolve();
          });
          ws.once("error", reject);
        });
        await new Promise((resolve) => ws.once("open", resolve));
        ws.send(JSON.stringify({ op: "subscribe", channels: { news: {} } }));
        await subscribed;
        clients.push(Object.assign(ws, { messages }));
      }
      const before = s.server.stats.compressions;
      const data = { items: Array.from({ length: 300 }, (_, i) => ({ id: i, v: "x" })) };
      const got = clients.map((ws) =>
        new Promise<Record<string, unknown>>((resolve) =>
          ws.on("message", (d) => {
            const m = parsePushMessage(d);
            if (m.type === "publication") resolve(m);
          })
        )
      );
      s.server.publish("news", data);
      for (const m of await Promise.all(got)) assert.deepEqual(m.data, data);
      assert.equal(s.server.stats.compressions - before, 1);
      for (const ws of clients) await wsClose(ws);
    });
  },
});

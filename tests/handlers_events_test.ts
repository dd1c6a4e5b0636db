// Every handler event, through the real server process: each fires with the right arguments,
// and events from one source (a connection, or the FIFO) reach the handlers in order.

import assert from "node:assert/strict";
import {
  type ServerProcess,
  startServer,
  withServer,
  writeFifo,
} from "./support/server_process.ts";
import { closeWs, connectWs } from "./support/ws_client.ts";
import { clientFrame, RawClient, ReadTimeout, upgradeRequest } from "./support/raw_client.ts";
import { concat } from "./support/feed.ts";
import { Opcode } from "../lib/protocol/frame.ts";

const FIXTURE = new URL("./fixtures/events_handlers.ts", import.meta.url).pathname;

type Recorded = Record<string, unknown> & { ev: string };

/** The events the fixture logged so far, in order. */
function events(server: ServerProcess): Recorded[] {
  return [...server.stderr().matchAll(/^info: fixture (.*)$/gm)].map((m) => JSON.parse(m[1]));
}

function eventsOf(server: ServerProcess, id: number): Recorded[] {
  return events(server).filter((e) => e.id === id);
}

/** Runs `body` against a server running the events fixture with extra `args`. */
function withFixture(
  args: string[],
  body: (server: ServerProcess) => Promise<void>,
): Promise<void> {
  return withServer([FIXTURE, ...args], body);
}

/** The id the server gave the most recent connection (from the fixture's `open` line). */
function lastOpenId(server: ServerProcess): number {
  const opens = events(server).filter((e) => e.ev === "open");
  return opens[opens.length - 1].id as number;
}

Deno.test("upgrade sees method, path, query, headers, cookies, Origin, address and subprotocols", async () => {
  await withFixture([], async (server) => {
    const client = await connectWs(server.port, "/room/7?user=ann&x=%C3%A9", {
      protocols: ["chat.v1", "chat.v2"],
      headers: {
        Cookie: 'session=abc%20def; theme="dark"',
        Origin: "https://app.example",
        "X-Test": "yes",
      },
    });
    assert.equal(client.ws.protocol, "chat.v2");
    await server.waitForLog('"ev":"open"');
    const upgrade = events(server).find((e) => e.ev === "upgrade")!;
    assert.deepEqual(upgrade, {
      ev: "upgrade",
      method: "GET",
      path: "/room/7",
      query: { user: "ann", x: "é" },
      cookies: { session: "abc def", theme: "dark" },
      origin: "https://app.example",
      remoteAddress: "127.0.0.1",
      protocols: ["chat.v1", "chat.v2"],
      started: true,
      xTest: "yes",
    });
    await closeWs(client);
  });
});

Deno.test("start runs once after listening; connections wait until its promise settles", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-gate-" });
  const gatePath = `${dir}/gate.fifo`;
  const made = await new Deno.Command("mkfifo", { args: [gatePath] }).output();
  assert.ok(made.success);
  // The fixture's start() waits until this test opens the gate FIFO.
  const server = await startServer({
    args: [FIXTURE],
    permissions: ["--allow-net", "--allow-read", "--allow-env=EVENTS_START_GATE"],
    env: { EVENTS_START_GATE: gatePath },
  });
  let gateOpened = false;
  const client = await RawClient.connect(server.port);
  try {
    await server.waitForLog('"ev":"start"');
    // start() is pending: the connection waits in the backlog, unanswered. (A bounded look
    // for something that must not happen; a correct server never answers here.)
    await client.write(upgradeRequest());
    await assert.rejects(client.readResponse(300), ReadTimeout);
    await writeFifo(gatePath, "go\n");
    gateOpened = true;
    assert.equal((await client.readResponse()).status, 101);
    await server.waitForLog('"ev":"open"');
    const evs = events(server);
    assert.deepEqual(evs.map((e) => e.ev), ["start", "started", "upgrade", "open"]);
    assert.deepEqual(evs[0], { ev: "start", connections: 0 });
    assert.equal(evs[2].started, true, "upgrade ran after start's promise settled");
  } finally {
    client.close();
    // A failure before the gate opened leaves the server blocked in open(2): unblock it.
    if (!gateOpened) await writeFifo(gatePath, "go\n").catch(() => {});
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("open, text, binary, ping and close fire with their arguments, in order", async () => {
  await withFixture([], async (server) => {
    const client = await connectWs(server.port, "/feed?user=bob", {
      protocols: ["chat.v2"],
      headers: { "X-Test": "1" },
    });
    await server.waitForLog('"ev":"open"');
    const id = lastOpenId(server);
    client.ws.send("hello");
    assert.equal(await client.next(), "bob #1: hello");
    client.ws.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await client.next(), new Uint8Array([3, 2, 1]));
    // The automatic pong goes out before the ping handler runs (its message comes after).
    const seen: string[] = [];
    client.ws.on("pong", (data: Uint8Array) => seen.push(`pong ${new TextDecoder().decode(data)}`));
    client.ws.ping("are you there");
    seen.push(String(await client.next()));
    assert.deepEqual(seen, ["pong are you there", "after ping"]);
    client.ws.close(4001, "done here");
    assert.equal((await client.closed).code, 4001);
    await server.waitForLog('"ev":"close"');
    assert.deepEqual(eventsOf(server, id), [
      {
        ev: "open",
        id,
        path: "/feed",
        query: { user: "bob" },
        protocol: "chat.v2",
        data: { user: "bob", texts: 0 },
        remoteAddress: "127.0.0.1",
        xTest: "1",
        connections: 1,
      },
      { ev: "text", id, text: "hello" },
      { ev: "binary", id, bytes: [1, 2, 3] },
      { ev: "ping", id, payload: "are you there" },
      { ev: "close", id, code: 4001, reason: "done here", clean: true },
    ]);
  });
});

Deno.test("close reports clean: false and 1006 when the TCP connection just drops (RFC 6455 §7.1.5)", async () => {
  await withFixture([], async (server) => {
    const raw = await RawClient.open(server.port);
    await server.waitForLog('"ev":"open"');
    const id = lastOpenId(server);
    raw.close();
    await server.waitForLog('"ev":"close"');
    assert.deepEqual(eventsOf(server, id).at(-1), {
      ev: "close",
      id,
      code: 1006,
      reason: "",
      clean: false,
    });
  });
});

Deno.test("a slow async handler holds back only its own connection; each stays in order", async () => {
  await withFixture([], async (server) => {
    const a = await connectWs(server.port, "/?user=a");
    const b = await connectWs(server.port, "/?user=b");
    // a's text handler waits in "hold" until b says "release".
    a.ws.send("hold");
    a.ws.send("second");
    await server.waitForLog('"text":"hold"');
    b.ws.send("quick");
    assert.equal(await b.next(), "b #1: quick", "b is not held back behind a's handler");
    assert.deepEqual(a.pending(), [], "a's handler is still waiting");
    b.ws.send("release");
    assert.equal(await b.next(), "b #2: release");
    assert.equal(await a.next(), "a #1: hold");
    assert.equal(await a.next(), "a #2: second");
    await server.waitForLog('"text":"second"');
    const texts = events(server).filter((e) => e.ev === "text").map((e) => e.text);
    // a's second message is dispatched only after its first handler settled.
    assert.deepEqual(texts, ["hold", "quick", "release", "second"]);
    await closeWs(a);
    await closeWs(b);
  });
});

Deno.test("fifo gets every line in order, even when it is async; broadcast filters by connection", async () => {
  await withFixture([], async (server) => {
    const a = await connectWs(server.port);
    await server.waitForLog('"ev":"open"');
    const aId = lastOpenId(server);
    const b = await connectWs(server.port);
    // Pongs back: both connections are registered before the FIFO broadcasts. (The fixture's
    // ping handler answers each ping with "after ping".)
    for (const c of [a, b]) {
      await c.roundTrip();
      assert.equal(await c.next(), "after ping");
    }
    const lines = [];
    for (let i = 0; i < 20; i++) {
      lines.push(JSON.stringify({ msg: `all ${i}`, delay: i % 3 === 0 ? 30 : 0 }));
      if (i % 5 === 0) lines.push(JSON.stringify({ to: aId, msg: `only a ${i}` }));
    }
    await server.writeFifo(lines.join("\n") + "\n");
    const expectedA = [], expectedB = [];
    for (let i = 0; i < 20; i++) {
      expectedA.push(`all ${i}`);
      expectedB.push(`all ${i}`);
      if (i % 5 === 0) expectedA.push(`only a ${i}`);
    }
    const gotA = [], gotB = [];
    for (let i = 0; i < expectedA.length; i++) gotA.push(await a.next());
    for (let i = 0; i < expectedB.length; i++) gotB.push(await b.next());
    assert.deepEqual(gotA, expectedA);
    assert.deepEqual(gotB, expectedB);
    await server.waitForLog('"line":"all 19"');
    const fifoEvents = events(server).filter((e) => e.ev === "fifo");
    assert.deepEqual(fifoEvents.map((e) => e.line), [...expectedA]);
    assert.ok(fifoEvents.every((e) => e.connections === 2));
    await closeWs(a);
    await closeWs(b);
  });
});

Deno.test("loop runs on every tick and shutdown runs on SIGTERM", async () => {
  await withFixture(["--tick", "30ms"], async (server) => {
    const client = await connectWs(server.port);
    await server.waitForLog('"tick":3');
    const loops = events(server).filter((e) => e.ev === "loop");
    assert.deepEqual(loops.map((e) => e.tick), [1, 2, 3]);
    const status = await server.signal("SIGTERM");
    assert.equal(status.code, 0);
    assert.equal((await client.closed).code, 1001);
    assert.deepEqual(events(server).filter((e) => e.ev === "shutdown"), [
      { ev: "shutdown", connections: 1 },
    ]);
  });
});

Deno.test("replies to frames read in one chunk keep their order: text, binary, pong (RFC 6455 §5.4, §5.5.2)", async () => {
  // The echo example's handlers are synchronous: every reply to one read is queued in one turn.
  const echo = new URL("../examples/echo.ts", import.meta.url).pathname;
  const server = await startServer({ args: [echo] });
  const client = await RawClient.open(server.port);
  try {
    const frames = [
      clientFrame({ opcode: Opcode.TEXT, payload: "a" }),
      clientFrame({ opcode: Opcode.BINARY, payload: new Uint8Array([1, 2]) }),
      clientFrame({ opcode: Opcode.TEXT, payload: "b" }),
      clientFrame({ opcode: Opcode.PING, payload: "p" }),
      clientFrame({ opcode: Opcode.TEXT, payload: "c" }),
    ];
    await client.write(concat(frames));
    const seen: string[] = [];
    for (let i = 0; i < frames.length; i++) {
      const frame = await client.readFrame();
      seen.push(`${frame.opcode} ${[...frame.payload].join(",")}`);
    }
    const byte = (s: string) => s.charCodeAt(0);
    assert.deepEqual(seen, [
      `${Opcode.TEXT} ${byte("a")}`,
      `${Opcode.BINARY} 1,2`,
      `${Opcode.TEXT} ${byte("b")}`,
      `${Opcode.PONG} ${byte("p")}`,
      `${Opcode.TEXT} ${byte("c")}`,
    ]);
  } finally {
    client.close();
    await server.stop();
  }
});

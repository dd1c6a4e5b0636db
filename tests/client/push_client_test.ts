// Tests the browser client (client/push-client.js): its size, and its behaviour against a real
// push.v1 server process (tests/fixtures/push_v1_server.ts) killed with SIGKILL and restarted,
// in Deno and in headless Chromium, and against a scripted WebSocket for close codes and the
// heartbeat.

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { PushClient } from "../../client/push-client.js";
import type { Publication, StateChange } from "../../client/push-client.d.ts";
import { launchChromium } from "../support/browser.ts";
import { toolFor } from "../support/tools.ts";

const CLIENT = new URL("../../client/push-client.js", import.meta.url);
const SERVER = new URL("../fixtures/push_v1_server.ts", import.meta.url).pathname;
const MAX_GZIPPED_BYTES = 4096;

/** A conservative minifier: drops comments, indentation and blank lines (no renaming). */
function strip(source: string): string {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split("\n")
    .map((line) => line.replace(/^\s+|\s+$/g, "").replace(/^\/\/.*$/, ""))
    .filter((line) => line !== "")
    .join("\n");
}

Deno.test("the client is at most 4 KB minified and gzipped", async () => {
  const source = await Deno.readTextFile(CLIENT);
  const stripped = strip(source);
  const gzipped = gzipSync(new TextEncoder().encode(stripped), { level: 9 }).length;
  console.log(
    `push-client.js: ${source.length} B source, ${stripped.length} B stripped, ${gzipped} B gzipped`,
  );
  assert.ok(gzipped <= MAX_GZIPPED_BYTES, `${gzipped} B gzipped`);
  // The stripped text still works: it is the module that the page would load.
  const mod = await import(`data:text/javascript,${encodeURIComponent(stripped)}`);
  assert.equal(typeof mod.PushClient, "function");
});

/** Resolves when `predicate` holds after an event of `type`. */
function until<T>(client: PushClient, type: string, predicate: (d: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    // deno-lint-ignore no-explicit-any
    const off = client.on(type as any, (detail: any) => {
      if (predicate(detail)) {
        off();
        resolve(detail);
      }
    });
  });
}

/** The server process, its stdin (the FIFO stand-in) and its stdout lines. */
class ServerProcess {
  readonly port: number;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: Deno.ChildProcess, port: number, lines: AsyncIterator<string>) {
    this.#child = child;
    this.port = port;
    this.#lines = lines;
    this.#stdin = child.stdin.getWriter();
  }

  static async start(stateDir: string, port = 0): Promise<ServerProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", "--allow-write", SERVER, String(port), stateDir],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = readLines(child.stdout);
    const first = await lines.next();
    assert.match(String(first.value), /^listening \d+$/);
    return new ServerProcess(child, Number(String(first.value).split(" ")[1]), lines);
  }

  /** Writes FIFO lines as one batch; resolves when the server reports them published. */
  async publish(lines: string[]): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(lines.map((l) => l + "\n").join("")));
    for (let i = 0; i < lines.length; i++) {
      const next = await this.#lines.next();
      if (next.done) throw new Error("the server stopped before it accepted the lines");
      assert.match(String(next.value), /^published /);
    }
  }

  async kill(): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.#child.status;
    await this.#stdin.close().catch(() => {});
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let held = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    held += text;
    let nl;
    while ((nl = held.indexOf("\n")) >= 0) {
      yield held.slice(0, nl);
      held = held.slice(nl + 1);
    }
  }
}

function news(n: number, channel = "news"): string {
  return JSON.stringify({ channel, data: { n } });
}

Deno.test("after kill -9 and a restart the client resumes: every publication once, in order", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "push-client-" });
  let server = await ServerProcess.start(stateDir);
  const client = new PushClient(`ws://127.0.0.1:${server.port}`, { minDelay: 20, maxDelay: 100 });
  const got = new Map<string, number[]>([["news", []], ["user:42", []]]);
  const lost: string[] = [];
  client.on(
    "publication",
    (p: Publication) => got.get(p.channel)!.push((p.data as { n: number }).n),
  );
  client.on("lost", ({ channel }) => lost.push(channel));
  try {
    client.subscribe("news");
    client.subscribe("user:42");
    const subscribed = until(
      client,
      "subscribed",
      (d: { channel: string }) => d.channel === "user:42",
    );
    client.connect();
    await subscribed;
    const all = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    const sent = { news: 0, user: 0 };
    const burst = async (count: number) => {
      const lines = [];
      for (let i = 0; i < count; i++) {
        lines.push(i % 3 ? news(++sent.news) : news(++sent.user, "user:42"));
      }
      await server.publish(lines);
    };
    await burst(30);
    const reconnecting = until(client, "state", (s: StateChange) => s.state === "reconnecting");
    await server.kill();
    await reconnecting;
    const open = until(client, "state", (s: StateChange) => s.state === "open");
    server = await ServerProcess.start(stateDir, server.port);
    await burst(30); // published while the client may still be away: replayed on resume
    await open;
    await burst(9); // live again
    while (got.get("news")!.length < sent.news || got.get("user:42")!.length < sent.user) {
      await until(client, "publication", () => true);
    }
    assert.deepStrictEqual(got.get("news"), all(sent.news));
    assert.deepStrictEqual(got.get("user:42"), all(sent.user));
    assert.deepStrictEqual(lost, []);
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("a saved position is resumed exactly; an unknown epoch is reported lost", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "push-client-" });
  const server = await ServerProcess.start(stateDir);
  const url = `ws://127.0.0.1:${server.port}`;
  try {
    await server.publish([news(1), news(2), news(3)]);
    const first = new PushClient(url);
    first.subscribe("news");
    const done = until(first, "subscribed", () => true);
    first.connect();
    const sub = await done as { epoch: string; offset: number; recovered: boolean };
    assert.equal(sub.offset, 3);
    first.close();
    await server.publish([news(4), news(5)]);

    const second = new PushClient(url);
    const seen: number[] = [];
    second.on("publication", (p: Publication) => seen.push(p.offset));
    second.subscribe("news", { epoch: sub.epoch, offset: 3 });
    const resumed = until(second, "subscribed", () => true);
    second.connect();
    assert.equal((await resumed as { recovered: boolean }).recovered, true);
    while (seen.length < 2) await until(second, "publication", () => true);
    assert.deepStrictEqual(seen, [4, 5]);
    assert.deepStrictEqual(second.position("news"), { epoch: sub.epoch, offset: 5 });
    second.close();

    const third = new PushClient(url);
    third.subscribe("news", { epoch: "gone", offset: 2 });
    const lost = until(third, "lost", () => true);
    third.connect();
    assert.deepStrictEqual(await lost, { channel: "news", epoch: sub.epoch, offset: 5 });
    third.close();
  } finally {
    await server.kill();
    await Deno.remove(stateDir, { recursive: true });
  }
});

/** A scripted WebSocket: the test opens, answers and closes it. */
class FakeSocket {
  static made: FakeSocket[] = [];
  static waiting: (() => void)[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  sent: string[] = [];
  closed = false;
  #sending: (() => void)[] = [];
  constructor(readonly url: string, readonly protocol: string) {
    FakeSocket.made.push(this);
    for (const wake of FakeSocket.waiting.splice(0)) wake();
  }
  send(text: string) {
    this.sent.push(text);
    for (const wake of this.#sending.splice(0)) wake();
  }
  /** Resolves once the client has sent `n` messages on this socket. */
  async sentCount(n: number): Promise<void> {
    while (this.sent.length < n) await new Promise<void>((r) => this.#sending.push(r));
  }
  close() {
    this.closed = true;
  }
}

function fakeClient(options: Record<string, unknown> = {}) {
  FakeSocket.made = [];
  return new PushClient("ws://x", {
    WebSocket: FakeSocket as unknown as typeof WebSocket,
    minDelay: 1,
    ...options,
  });
}

/** The n-th socket the client made (1-based), once it exists. */
async function nextSocket(_client: PushClient, n: number): Promise<FakeSocket> {
  while (FakeSocket.made.length < n) {
    await new Promise<void>((resolve) => FakeSocket.waiting.push(resolve));
  }
  return FakeSocket.made[n - 1];
}

Deno.test("client offers push.v1 and resubscribes every channel with its last position", async () => {
  const client = fakeClient();
  client.subscribe("a", { epoch: "e", offset: 4 });
  client.subscribe("b");
  client.connect();
  const ws = await nextSocket(client, 1);
  assert.equal(ws.protocol, "push.v1");
  ws.onopen!();
  assert.deepStrictEqual(JSON.parse(ws.sent[0]), {
    op: "subscribe",
    id: 1,
    channels: { a: { epoch: "e", offset: 4 }, b: {} },
  });
  ws.onmessage!({
    data: '{"type":"subscribed","channel":"b","recovered":false,"epoch":"f","offset":9}',
  });
  ws.onmessage!({ data: '["b",10,1]' });
  ws.onmessage!({ data: '["b",10,1]' });
  assert.deepStrictEqual(client.position("b"), { epoch: "f", offset: 10 });
  ws.onmessage!({ data: '{"type":"error","code":4005,"reason":"no","channel":"a"}' });
  assert.equal(client.position("a"), null, "a refused channel is not asked for again");
  client.close();
});

Deno.test("close code 4000 reconnects at once; give-up codes stop; others back off", async () => {
  const client = fakeClient({ minDelay: 50 });
  const states: StateChange[] = [];
  client.on("state", (s) => states.push(s));
  client.connect();
  const first = await nextSocket(client, 1);
  first.onopen!();
  first.onclose!({ code: 4000, reason: "slow consumer" });
  assert.deepStrictEqual(states.at(-1), {
    state: "reconnecting",
    code: 4000,
    reason: "slow consumer",
    delay: 0,
  });
  const second = await nextSocket(client, 2);
  second.onopen!();
  second.onclose!({ code: 1006, reason: "" });
  const backoff = states.at(-1)!;
  assert.equal(backoff.state, "reconnecting");
  assert.ok(backoff.delay! >= 0 && backoff.delay! < 50, "full jitter below minDelay·2^0");
  const third = await nextSocket(client, 3);
  third.onopen!();
  third.onclose!({ code: 4005, reason: "forbidden" });
  assert.deepStrictEqual(states.at(-1), { state: "closed", code: 4005, reason: "forbidden" });
  assert.equal(FakeSocket.made.length, 3);
  client.close();
});

Deno.test("a ping without an answer drops the link and reconnects (application heartbeat)", async () => {
  const client = fakeClient({ heartbeat: 5, timeout: 5 });
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  const dropped = await until(client, "state", (s: StateChange) => s.state === "reconnecting");
  assert.equal(dropped.code, 4999);
  assert.deepStrictEqual(JSON.parse(ws.sent.at(-1)!), { op: "ping" });
  assert.ok(ws.closed);
  client.close();
});

Deno.test("a token is sent in an auth message before subscribing", async () => {
  const client = fakeClient({ token: () => Promise.resolve("t0k") });
  client.subscribe("a");
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  assert.deepStrictEqual(ws.sent.map((s) => JSON.parse(s).op), ["auth", "subscribe"]);
  assert.equal(JSON.parse(ws.sent[0]).token, "t0k");
  client.close();
});

Deno.test("authed names the user; join and leave are events; replies without ids resolve by channel", async () => {
  const client = fakeClient({ token: "t0k" });
  const seen: unknown[] = [];
  client.on("authed", (a) => seen.push(a));
  client.on("join", (j) => seen.push(j));
  client.on("leave", (l) => seen.push(l));
  client.subscribe("room.1");
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  ws.onmessage!({ data: '{"type":"authed","user":"42","expiresAt":5000}' });
  assert.equal(client.user, "42");
  const a = client.presence("room.1");
  const b = client.presence("room.2");
  assert.deepStrictEqual(ws.sent.slice(-2).map((s) => JSON.parse(s)), [
    { op: "presence", id: 2, channel: "room.1" },
    { op: "presence", id: 3, channel: "room.2" },
  ]);
  const reply2 = { type: "presence", channel: "room.2", total: 0, users: [] };
  const reply1 = {
    type: "presence",
    channel: "room.1",
    total: 1,
    users: [{ user: "42", connections: 1 }],
  };
  ws.onmessage!({ data: JSON.stringify(reply2) });
  ws.onmessage!({ data: JSON.stringify(reply1) });
  assert.deepStrictEqual(await a, reply1);
  assert.deepStrictEqual(await b, reply2);
  ws.onmessage!({ data: '{"type":"join","channel":"room.1","user":"7"}' });
  ws.onmessage!({ data: '{"type":"leave","channel":"room.1","user":"7"}' });
  assert.deepStrictEqual(seen, [
    { type: "authed", user: "42", expiresAt: 5000 },
    { type: "join", channel: "room.1", user: "7" },
    { type: "leave", channel: "room.1", user: "7" },
  ]);
  client.close();
});

Deno.test("two presence queries on one channel resolve with their own replies, by id", async () => {
  const client = fakeClient();
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  const first = client.presence("room.1");
  const second = client.presence("room.1");
  const [q1, q2] = ws.sent.slice(-2).map((s) => JSON.parse(s));
  assert.deepStrictEqual([q1.channel, q2.channel], ["room.1", "room.1"]);
  assert.notEqual(q1.id, q2.id);
  // The replies arrive in the other order (one member left between the two answers).
  const reply2 = { type: "presence", id: q2.id, channel: "room.1", total: 0, users: [] };
  const reply1 = {
    type: "presence",
    id: q1.id,
    channel: "room.1",
    total: 1,
    users: [{ user: "7", connections: 1 }],
  };
  ws.onmessage!({ data: JSON.stringify(reply2) });
  ws.onmessage!({ data: JSON.stringify(reply1) });
  assert.deepStrictEqual(await first, reply1);
  assert.deepStrictEqual(await second, reply2);
  // A reply whose id matches no query (already answered) settles nothing else.
  const third = client.presence("room.1");
  const q3 = JSON.parse(ws.sent.at(-1)!);
  ws.onmessage!({ data: JSON.stringify(reply1) });
  const reply3 = { ...reply2, id: q3.id };
  ws.onmessage!({ data: JSON.stringify(reply3) });
  assert.deepStrictEqual(await third, reply3);
  client.close();
});

Deno.test("a refused presence query rejects with the server's error and keeps the subscription", async () => {
  const client = fakeClient();
  client.subscribe("room.1");
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  ws.onmessage!({
    data: '{"type":"subscribed","channel":"room.1","recovered":false,"epoch":"e","offset":3}',
  });
  const refused = client.presence("room.1");
  const id = JSON.parse(ws.sent.at(-1)!).id;
  const error = { type: "error", id, code: 4005, reason: "channel not granted", channel: "room.1" };
  ws.onmessage!({ data: JSON.stringify(error) });
  await assert.rejects(refused, (e) => {
    assert.deepStrictEqual(e, error);
    return true;
  });
  assert.deepStrictEqual(client.position("room.1"), { epoch: "e", offset: 3 });
  // A query in flight when the link closes rejects with the close.
  const cut = client.presence("room.1");
  ws.onclose!({ code: 4004, reason: "token expired" });
  await assert.rejects(cut, (e) => {
    assert.deepStrictEqual(e, { code: 4004, reason: "token expired" });
    return true;
  });
  await assert.rejects(client.presence("room.1"), (e) => {
    assert.deepStrictEqual(e, { code: 0, reason: "not connected" });
    return true;
  });
  client.close();
});

/** A token function that counts its calls and mints "t1", "t2", …, failing the calls in `fail`. */
function tokens(fail: number[] = []) {
  const source = { calls: 0, fn: () => Promise.resolve("") };
  source.fn = () => {
    const n = ++source.calls;
    return fail.includes(n) ? Promise.reject(new Error("offline")) : Promise.resolve(`t${n}`);
  };
  return source;
}

const authed = (expiresAt: number) => ({
  data: JSON.stringify({ type: "authed", user: "42", expiresAt }),
});
const sentAuth = (ws: FakeSocket) =>
  ws.sent.map((s) => JSON.parse(s)).filter((m) => m.op === "auth").map((m) => m.token);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("a function token is refreshed at 80% of its lifetime on the open socket, after every authed", async () => {
  const source = tokens();
  const client = fakeClient({ token: source.fn });
  const states: string[] = [];
  client.on("state", (s) => states.push(s.state));
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  assert.deepStrictEqual(sentAuth(ws), ["t1"]);
  const lifetime = 200;
  let start = Date.now();
  ws.onmessage!(authed(start + lifetime));
  await ws.sentCount(2);
  const first = Date.now() - start;
  assert.ok(first >= 0.8 * lifetime - 5, `refreshed after ${first} ms, not before 80%`);
  assert.deepStrictEqual(sentAuth(ws), ["t1", "t2"]);
  // The server's reply to the refresh schedules the next one, from its new expiry.
  start = Date.now();
  ws.onmessage!(authed(start + lifetime));
  await ws.sentCount(3);
  assert.ok(Date.now() - start >= 0.8 * lifetime - 5);
  assert.deepStrictEqual(sentAuth(ws), ["t1", "t2", "t3"]);
  assert.equal(FakeSocket.made.length, 1, "no reconnect");
  assert.deepStrictEqual(states, ["connecting", "open"]);
  client.close();
});

Deno.test("a refresh that fails is tried again halfway to the expiry, on the same socket", async () => {
  const source = tokens([2, 3]);
  const client = fakeClient({ token: source.fn });
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  const start = Date.now();
  const lifetime = 1000;
  ws.onmessage!(authed(start + lifetime));
  await ws.sentCount(2);
  // Tries at 80% (fails), 90% (fails), 95%: sent before the token expired.
  const took = Date.now() - start;
  assert.ok(took >= 0.95 * lifetime - 5 && took < lifetime, `sent after ${took} ms`);
  assert.equal(source.calls, 4, "two failures, then a token");
  assert.deepStrictEqual(sentAuth(ws), ["t1", "t4"]);
  assert.equal(FakeSocket.made.length, 1);
  client.close();
});

Deno.test("a closed link cancels the refresh; a token fetched as it closed is not sent on the next", async () => {
  let release = (_token: string) => {};
  let refreshing = () => {};
  const asked = new Promise<void>((r) => refreshing = r);
  let calls = 0;
  const client = fakeClient({
    token: () => {
      if (++calls !== 2) return Promise.resolve(`t${calls}`);
      refreshing();
      return new Promise<string>((r) => release = r);
    },
  });
  client.connect();
  const first = await nextSocket(client, 1);
  first.onopen!();
  first.onmessage!(authed(Date.now() + 50));
  await asked; // the refresh timer fired, and its token is on its way
  first.onclose!({ code: 1006, reason: "" });
  const second = await nextSocket(client, 2);
  second.onopen!();
  release("late");
  second.onmessage!(authed(Date.now() + 10_000));
  await pause(20);
  assert.deepStrictEqual(sentAuth(first), ["t1"]);
  assert.deepStrictEqual(sentAuth(second), ["t3"], "the late token went with its connection");
  // A timer armed on a connection that then closes never fires.
  second.onmessage!(authed(Date.now() + 50));
  client.close();
  await pause(80);
  assert.equal(calls, 3);
  assert.deepStrictEqual(sentAuth(second), ["t3"]);
});

Deno.test("a string token is not refreshed: the 4004 at its expiry ends the client", async () => {
  const client = fakeClient({ token: "t0k" });
  client.connect();
  const ws = await nextSocket(client, 1);
  ws.onopen!();
  ws.onmessage!(authed(Date.now() + 30));
  await pause(60);
  assert.deepStrictEqual(sentAuth(ws), ["t0k"]);
  ws.onclose!({ code: 4004, reason: "token expired" });
  assert.equal(client.state, "closed");
});

const chromiumPath = toolFor("chromium", "push-client.js in Chromium");

Deno.test({
  name:
    "in Chromium, a page on two channels gets every accepted line once, in order, across kill -9",
  ignore: chromiumPath === null,
  async fn() {
    const stateDir = await Deno.makeTempDir({ prefix: "push-chromium-" });
    let server = await ServerProcess.start(stateDir);
    const browser = await launchChromium(chromiumPath!);
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${server.port}/`);
      await tab.evaluate(async (url: string) => {
        const { PushClient } = await import("/push-client.js");
        const g = globalThis as unknown as Record<string, unknown>;
        const got: Record<string, number[]> = { news: [], "user:42": [] };
        const lost: string[] = [];
        g.got = got;
        g.lost = lost;
        const push = new PushClient(url, { minDelay: 50, maxDelay: 400 });
        push.on("publication", (p: { channel: string; data: { n: number } }) => {
          got[p.channel].push(p.data.n);
        });
        push.on("lost", (l: { channel: string }) => lost.push(l.channel));
        push.subscribe("news");
        push.subscribe("user:42");
        await new Promise<void>((resolve) => {
          let subscribed = 0;
          push.on("subscribed", () => ++subscribed === 2 && resolve());
          push.connect();
        });
      }, `ws://127.0.0.1:${server.port}/`);

      // The writer: one line at a time; a line counts once the server accepted it (committed).
      const TOTAL = 120;
      const KILL_AT = 50;
      const accepted = { news: [] as number[], "user:42": [] as number[] };
      let failures = 0;
      for (let n = 1; n <= TOTAL;) {
        const channel = n % 4 === 0 ? "user:42" : "news";
        try {
          await server.publish([JSON.stringify({ channel, data: { n } })]);
          accepted[channel].push(n);
          if (n === KILL_AT) await server.kill();
          n++;
        } catch {
          // The server is down: this write failed. Restart it, and retry the same line.
          failures++;
          server = await ServerProcess.start(stateDir, server.port);
        }
      }
      assert.ok(failures >= 1, "a write failed while the server was down");
      await tab.waitForFunction(
        (want: { news: number; user: number }) => {
          const got = (globalThis as unknown as { got: Record<string, number[]> }).got;
          return got.news.length >= want.news && got["user:42"].length >= want.user;
        },
        { news: accepted.news.length, user: accepted["user:42"].length },
        { timeout: 20_000 },
      );
      const result = await tab.evaluate(() => {
        const g = globalThis as unknown as { got: unknown; lost: unknown };
        return { got: g.got, lost: g.lost };
      });
      assert.deepStrictEqual(result, { got: accepted, lost: [] });
    } finally {
      await browser.close();
      await server.kill();
      await Deno.remove(stateDir, { recursive: true });
    }
  },
});

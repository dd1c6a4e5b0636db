// Tests the push.v1 hub (lib/server/channel_hub.ts) with fake connections: subscribe with
// resume, the seam between replay and live, replays paced by a simulated queue, FIFO batches,
// the authorize hook, and malformed operations.

import assert from "node:assert/strict";
import { ChannelHub, REPLAY_OVERTAKEN_REASON } from "../../lib/server/channel_hub.ts";
import { DEFAULT_HISTORY_LIMITS, type HistoryLimits } from "../../lib/channels/history.ts";
import { REPLAY_QUEUE_SHARE } from "../../lib/channels/replay_pacing.ts";
import { textFrameLength } from "../../lib/protocol/frame.ts";
import type { ChannelHubIo } from "../../lib/server/channel_hub.ts";
import { ChannelLog } from "../../lib/store/channel_log.ts";
import { Access } from "../../lib/auth/access.ts";
import { parseGrants } from "../../lib/policy/grants.ts";
import { parsePushMessage } from "../support/push_v1.ts";

interface Fake {
  hub: ChannelHub<string>;
  /** Every text each connection was sent, parsed. */
  got: Map<string, Record<string, unknown>[]>;
  closed: [string, number][];
  frames: number;
}

function fake(
  io: Partial<ChannelHubIo<string>> = {},
  options = {},
  onSent: (text: string) => void = () => {},
): Fake {
  const log = ChannelLog.open({ stateDir: null }).log;
  const got = new Map<string, Record<string, unknown>[]>();
  const closed: [string, number][] = [];
  const f: Fake = { hub: undefined!, got, closed, frames: 0 };
  const push = (conn: string, text: string) => {
    if (!got.has(conn)) got.set(conn, []);
    got.get(conn)!.push(parsePushMessage(text));
    onSent(text);
  };
  f.hub = new ChannelHub(log, {
    io: {
      send: push,
      fanOut(text, to) {
        f.frames++;
        for (const conn of to) push(conn, text);
      },
      close: (conn, code) => closed.push([conn, code]),
      now: () => 0,
      ...io,
    },
    ...options,
  });
  return f;
}

const pubs = (f: Fake, conn: string) =>
  (f.got.get(conn) ?? []).filter((m) => m.type === "publication").map((m) => [m.channel, m.offset]);

Deno.test("a FIFO batch publishes to subscribers only, one frame per publication", () => {
  const f = fake();
  f.hub.open("a");
  f.hub.open("b");
  f.hub.text("a", '{"op":"subscribe","channels":{"news":{}}}');
  const broadcast: string[] = [];
  const result = f.hub.fifoBatch([
    '{"channel":"news","data":1}',
    "hello",
    '{"channel":"sport","data":2}',
    '{"channel":"news","da',
  ], (t) => broadcast.push(t));
  assert.deepStrictEqual(result, {
    published: 2,
    broadcast: 1,
    dropped: ["a line starting with { is not valid JSON"],
  });
  assert.deepStrictEqual(broadcast, ["hello"]);
  assert.deepStrictEqual(pubs(f, "a"), [["news", 1]]);
  assert.deepStrictEqual(pubs(f, "b"), []);
  assert.equal(f.frames, 1, "sport has no subscriber: no frame");
});

Deno.test("resume replays what was missed, then live, once each", () => {
  const f = fake();
  f.hub.fifoBatch(['{"channel":"news","data":1}', '{"channel":"news","data":2}'], () => {});
  f.hub.publish("news", 3);
  f.hub.open("a");
  f.hub.text("a", '{"op":"subscribe","id":7,"channels":{"news":{}}}');
  const sub = f.got.get("a")![0];
  assert.deepStrictEqual([sub.type, sub.id, sub.offset, sub.recovered], [
    "subscribed",
    7,
    3,
    false,
  ]);
  f.hub.closed("a");
  f.hub.publish("news", 4);
  f.hub.publish("news", 5);
  f.hub.open("a2");
  f.hub.text(
    "a2",
    JSON.stringify({ op: "subscribe", channels: { news: { epoch: sub.epoch, offset: 3 } } }),
  );
  f.hub.publish("news", 6);
  assert.equal(f.got.get("a2")![0].recovered, true);
  assert.deepStrictEqual(pubs(f, "a2"), [["news", 4], ["news", 5], ["news", 6]]);
});

Deno.test("a subscribe between commit and fan-out gets each publication once (the seam)", () => {
  // The server may await between committing a batch and fanning it out (a fifo hook). A client
  // that subscribes in that gap is replayed the committed publications; fan-out must skip it.
  const log = ChannelLog.open({ stateDir: null }).log;
  const sent: string[] = [];
  const hub = new ChannelHub<string>(log, {
    io: {
      send: (_c, t) => sent.push(t),
      fanOut: (t, to) => to.forEach(() => sent.push(t)),
      close: () => {},
      now: () => 0,
    },
  });
  hub.open("late");
  const [p1, p2] = log.publish([{ channel: "n", data: "1" }, { channel: "n", data: "2" }], 0);
  hub.subscribe("late", "n", { epoch: p1.epoch, offset: 0 });
  // What the fan-out after the commit does for p1 and p2:
  const live = [p1, p2].filter((pub) =>
    [...hub.subscriptions.subscribers("n")].some(([, after]) => pub.offset > after)
  );
  assert.deepStrictEqual(live, [], "both were replayed: fan-out sends them to nobody");
  const offsets = sent.map((t) => parsePushMessage(t)).map((m) => `${m.type} ${m.offset}`);
  assert.deepStrictEqual(offsets, ["subscribed 2", "publication 1", "publication 2"]);
  const [p3] = log.publish([{ channel: "n", data: "3" }], 0);
  assert.ok([...hub.subscriptions.subscribers("n")].every(([, after]) => p3.offset > after));
});

Deno.test("user and disconnect commands reach every connection of that user", () => {
  const f = fake();
  f.hub.open("a", "42");
  f.hub.open("b", "42");
  f.hub.open("c", "7");
  f.hub.fifoBatch(['{"user":"42","data":{"x":1}}', '{"disconnect":{"user":42}}'], () => {});
  assert.deepStrictEqual(f.got.get("a"), [{ type: "message", data: { x: 1 } }]);
  assert.deepStrictEqual(f.got.get("b"), [{ type: "message", data: { x: 1 } }]);
  assert.equal(f.got.get("c"), undefined);
  assert.deepStrictEqual(f.closed, [["a", 4006], ["b", 4006]]);
});

Deno.test("the authorize hook refuses with 4005 and runs before later operations", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let answered!: () => void;
  const pong = new Promise<void>((r) => (answered = r));
  const f = fake(
    {
      authorize: async (_conn, channel) => {
        await gate;
        return channel !== "secret";
      },
    },
    {},
    (text) => text.includes('"pong"') && answered(),
  );
  f.hub.open("a");
  f.hub.text("a", '{"op":"subscribe","id":1,"channels":{"news":{},"secret":{}}}');
  f.hub.text("a", '{"op":"ping","id":2}');
  assert.equal(f.got.get("a"), undefined, "nothing before the hook answers");
  release();
  await pong;
  const types = f.got.get("a")!.map((m) => [m.type, m.channel ?? null, m.code ?? null]);
  assert.deepStrictEqual(types, [
    ["subscribed", "news", null],
    ["error", "secret", 4005],
    ["pong", null, null],
  ]);
});

Deno.test("malformed operations get errors, and a flood of them closes with 4002", () => {
  const f = fake({}, { maxErrors: 5 });
  f.hub.open("a");
  for (const text of ["nope", "{}", '{"op":"x"}', '{"op":"subscribe","channels":{"a b":{}}}']) {
    f.hub.text("a", text);
  }
  f.hub.binary("a");
  assert.equal(f.got.get("a")!.length, 5);
  assert.ok(f.got.get("a")!.every((m) => m.type === "error" && m.code === 4002));
  assert.deepStrictEqual(f.closed, [["a", 4002]]);
});

Deno.test("the subscription cap answers an error for the channel over it", () => {
  const f = fake({}, { maxSubscriptionsPerConnection: 1 });
  f.hub.open("a");
  f.hub.text("a", '{"op":"subscribe","channels":{"one":{},"two":{}}}');
  const [first, second] = f.got.get("a")!;
  assert.equal(first.type, "subscribed");
  assert.deepStrictEqual([second.type, second.channel, second.code], ["error", "two", 4002]);
});

Deno.test("publish and subscribe from handlers throw on an invalid channel name (API misuse)", () => {
  const f = fake();
  f.hub.open("a");
  assert.throws(() => f.hub.publish("bad name", 1), /Cannot publish: channel name may only use/);
  assert.throws(() => f.hub.subscribe("a", ""), /Cannot subscribe: channel name is empty/);
  assert.ok(f.hub.subscribe("a", "news"));
  assert.equal(f.hub.publish("news", { a: 1 }), 1);
  assert.deepStrictEqual(pubs(f, "a"), [["news", 1]]);
});

Deno.test("subscribe from handlers refuses a connection that is not an open push.v1 one", () => {
  const f = fake();
  f.hub.open("gone");
  f.hub.closed("gone");
  // "plain" never opened here: the server opens only push.v1 connections in the hub.
  assert.equal(f.hub.subscribe("plain", "news"), false);
  assert.equal(f.hub.subscribe("gone", "news"), false);
  f.hub.publish("news", 1);
  assert.deepStrictEqual([...f.got.keys()], [], "neither was sent anything");
  assert.equal(f.hub.subscriptions.size, 0, "no subscription is left behind");
});

Deno.test("unsubscribe from handlers tells the client and leaves presence, as the operation does", () => {
  const events = parseGrants(["room"]);
  assert.ok(events.ok);
  const access = new Access<string>({ keys: undefined, presenceEvents: events.grants });
  const f = fake({}, { access });
  f.hub.open("a", "alice");
  f.hub.open("b", "bob");
  for (const conn of ["a", "b"]) assert.ok(f.hub.subscribe(conn, "room"));
  f.got.clear();
  assert.equal(f.hub.unsubscribe("a", "room"), true);
  assert.deepStrictEqual(f.got.get("a"), [{ type: "unsubscribed", channel: "room" }]);
  assert.deepStrictEqual(f.got.get("b"), [{ type: "leave", channel: "room", user: "alice" }]);
  assert.deepStrictEqual(access.presence.members("room"), [{ user: "bob", connections: 1 }]);
  f.got.clear();
  assert.equal(f.hub.unsubscribe("a", "room"), false, "no subscription left");
  assert.deepStrictEqual([...f.got.keys()], [], "and nothing to tell anyone");
});

Deno.test("with fanOutMany, a run of publications to one channel is fanned out once, in line order", () => {
  const calls: string[] = [];
  const f = fake({
    fanOut(text, to) {
      calls.push(`one ${parsePushMessage(text).offset} to ${to.join(",")}`);
      for (const conn of to) f.got.get(conn)!.push(parsePushMessage(text));
    },
    fanOutMany(texts, to) {
      calls.push(
        `many ${texts.map((t) => parsePushMessage(t).offset).join(",")} to ${to.join(",")}`,
      );
      for (const conn of to) for (const t of texts) f.got.get(conn)!.push(parsePushMessage(t));
    },
  });
  for (const conn of ["a", "b"]) {
    f.hub.open(conn);
    f.hub.text(conn, '{"op":"subscribe","channels":{"news":{}}}');
  }
  const news = (n: number) => JSON.stringify({ channel: "news", data: n });
  f.hub.fifoBatch(
    [news(1), news(2), news(3), "hello", news(4), '{"channel":"sport","data":0}', news(5), news(6)],
    (t) => calls.push(`broadcast ${t}`),
  );
  assert.deepStrictEqual(calls, [
    "many 1,2,3 to a,b",
    "broadcast hello",
    "one 4 to a,b",
    "many 5,6 to a,b",
  ]);
  for (const conn of ["a", "b"]) {
    assert.deepStrictEqual(pubs(f, conn), [1, 2, 3, 4, 5, 6].map((n) => ["news", n]));
  }
});

/**
 * A hub whose connections have a simulated outbound queue of `limit` bytes: what is sent stays
 * queued until `drain` writes it all, which then tells the hub (as the server's write pump does).
 */
function queued(limit: number, limits?: HistoryLimits) {
  const log = ChannelLog.open({ stateDir: null, limits }).log;
  const bytes = new Map<string, number>();
  const got = new Map<string, string[]>();
  const closed: [string, number, string][] = [];
  const take = (conn: string, text: string) => {
    bytes.set(conn, (bytes.get(conn) ?? 0) + textFrameLength(text));
    assert.ok(bytes.get(conn)! <= limit, `${conn}: over the queue limit`);
    if (!got.has(conn)) got.set(conn, []);
    const m = parsePushMessage(text);
    got.get(conn)!.push(m.type === "publication" ? `${m.channel}:${m.offset}` : String(m.type));
  };
  const hub = new ChannelHub<string>(log, {
    io: {
      send: take,
      fanOut: (text, to) => to.forEach((conn) => take(conn, text)),
      fanOutMany: (texts, to) => to.forEach((conn) => texts.forEach((t) => take(conn, t))),
      close: (conn, code, reason) => closed.push([conn, code, reason]),
      queue: (conn) => ({ queued: bytes.get(conn) ?? 0, limit }),
      now: () => 0,
    },
  });
  return {
    hub,
    log,
    got,
    closed,
    queued: (conn: string) => bytes.get(conn) ?? 0,
    /** Writes everything queued for `conn`; returns false when nothing was queued. */
    drain(conn: string): boolean {
      if ((bytes.get(conn) ?? 0) === 0) return false;
      bytes.set(conn, 0);
      hub.drained(conn);
      return true;
    },
  };
}

const range = (channel: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${channel}:${from + i}`);

/** About 100 bytes of data: a frame of about 120. */
const DATA = "x".repeat(100);
const QUEUE_LIMIT = 1000;

Deno.test("a replay larger than half the queue is sent as the queue drains, never over half", () => {
  const q = queued(QUEUE_LIMIT);
  for (let i = 0; i < 50; i++) q.hub.publish("news", DATA);
  const epoch = q.log.position("news").epoch;
  q.hub.open("a");
  q.hub.text("a", JSON.stringify({ op: "subscribe", channels: { news: { epoch, offset: 0 } } }));
  let drains = 0;
  do {
    assert.ok(q.queued("a") <= QUEUE_LIMIT * REPLAY_QUEUE_SHARE, `${q.queued("a")} B queued`);
    drains++;
  } while (q.drain("a"));
  assert.deepStrictEqual(q.got.get("a"), ["subscribed", ...range("news", 1, 50)]);
  assert.ok(drains > 10, `${drains} rounds: the replay was paced`);
  assert.deepStrictEqual(q.closed, []);
  q.hub.publish("news", DATA);
  assert.deepStrictEqual(q.got.get("a")!.at(-1), "news:51", "live once the replay is done");
});

Deno.test("publications made while a replay waits are held, and follow it once each (the seam)", () => {
  const q = queued(QUEUE_LIMIT);
  for (let i = 0; i < 20; i++) q.hub.publish("news", DATA);
  const epoch = q.log.position("news").epoch;
  for (const conn of ["a", "live"]) q.hub.open(conn);
  q.hub.text("live", '{"op":"subscribe","channels":{"news":{}}}');
  q.hub.text("a", JSON.stringify({ op: "subscribe", channels: { news: { epoch, offset: 0 } } }));
  const firstPage = q.got.get("a")!.length;
  assert.ok(firstPage > 1 && firstPage < 21, `${firstPage - 1} replayed before the first drain`);
  // Live publications by every path while the replay waits: publish, and a FIFO run.
  q.hub.publish("news", DATA);
  q.hub.fifoBatch(
    [21, 22].map((n) => JSON.stringify({ channel: "news", data: n })),
    () => {},
  );
  assert.equal(q.got.get("a")!.length, firstPage, "nothing live cut into the replay");
  assert.deepStrictEqual(q.got.get("live"), ["subscribed", ...range("news", 21, 23)]);
  while (q.drain("a")) q.drain("live");
  assert.deepStrictEqual(q.got.get("a"), ["subscribed", ...range("news", 1, 23)]);
  q.hub.fifoBatch([JSON.stringify({ channel: "news", data: 24 })], () => {});
  assert.deepStrictEqual(q.got.get("a")!.slice(-2), ["news:23", "news:24"]);
});

Deno.test("replies and other channels' publications are not held behind a waiting replay", () => {
  const q = queued(QUEUE_LIMIT);
  for (let i = 0; i < 20; i++) q.hub.publish("news", DATA);
  const epoch = q.log.position("news").epoch;
  q.hub.open("a");
  q.hub.text(
    "a",
    JSON.stringify({ op: "subscribe", channels: { news: { epoch, offset: 0 }, sport: {} } }),
  );
  q.hub.text("a", '{"op":"ping","id":1}');
  q.hub.publish("sport", 1);
  const got = q.got.get("a")!;
  assert.deepStrictEqual(got.slice(-3), ["subscribed", "pong", "sport:1"]);
  while (q.drain("a"));
  assert.deepStrictEqual(got.filter((m) => m.startsWith("news:")), range("news", 1, 20));
});

Deno.test("unsubscribing stops a waiting replay; subscribing again starts a new one", () => {
  const q = queued(QUEUE_LIMIT);
  for (let i = 0; i < 20; i++) q.hub.publish("news", DATA);
  const epoch = q.log.position("news").epoch;
  const resume = JSON.stringify({ op: "subscribe", channels: { news: { epoch, offset: 0 } } });
  q.hub.open("a");
  q.hub.text("a", resume);
  q.hub.text("a", '{"op":"unsubscribe","channels":["news"]}');
  const stopped = q.got.get("a")!.length;
  while (q.drain("a"));
  assert.equal(q.got.get("a")!.length, stopped, "nothing more after the unsubscribe");
  assert.equal(q.got.get("a")!.at(-1), "unsubscribed");
  q.hub.text("a", resume);
  while (q.drain("a"));
  assert.deepStrictEqual(q.got.get("a")!.slice(stopped), ["subscribed", ...range("news", 1, 20)]);
});

Deno.test("history trimmed past a waiting replay closes the client with 4000; its resume is then lost", () => {
  const limits = { ...DEFAULT_HISTORY_LIMITS, maxCount: 30 };
  const q = queued(QUEUE_LIMIT, limits);
  for (let i = 0; i < 30; i++) q.hub.publish("news", DATA);
  const epoch = q.log.position("news").epoch;
  q.hub.open("a");
  q.hub.text("a", JSON.stringify({ op: "subscribe", channels: { news: { epoch, offset: 0 } } }));
  // While the reader waits, 40 more: offsets 1..40 leave history (30 kept).
  for (let i = 0; i < 40; i++) q.hub.publish("news", DATA);
  while (q.closed.length === 0 && q.drain("a"));
  assert.deepStrictEqual(q.closed, [["a", 4000, REPLAY_OVERTAKEN_REASON]]);
  const sent = q.got.get("a")!.filter((m) => m.startsWith("news:"));
  assert.deepStrictEqual(sent, range("news", 1, 30), "what was read is sent, with no gap");
  q.hub.closed("a");
  q.hub.open("b");
  q.hub.text("b", JSON.stringify({ op: "subscribe", channels: { news: { epoch, offset: 30 } } }));
  assert.deepStrictEqual(q.got.get("b"), ["subscribed"]);
  assert.equal(q.log.resume("news", { epoch, offset: 30 }, 0).decision.kind, "lost");
});

Deno.test("a presence query's reply echoes its id; two queries on one channel keep their own ids", () => {
  const access = new Access<string>({ keys: undefined });
  const f = fake({}, { access });
  f.hub.open("a", "alice");
  f.hub.open("b", "bob");
  for (const conn of ["a", "b"]) assert.ok(f.hub.subscribe(conn, "room"));
  f.got.clear();
  f.hub.text("a", '{"op":"presence","id":"first","channel":"room"}');
  f.hub.text("a", '{"op":"presence","id":2,"channel":"room"}');
  f.hub.text("a", '{"op":"presence","channel":"room"}');
  const users = [{ user: "alice", connections: 1 }, { user: "bob", connections: 1 }];
  assert.deepStrictEqual(f.got.get("a"), [
    { type: "presence", id: "first", channel: "room", total: 2, users },
    { type: "presence", id: 2, channel: "room", total: 2, users },
    { type: "presence", channel: "room", total: 2, users },
  ]);
});

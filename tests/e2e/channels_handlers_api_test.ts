// End to end through the real server process: the handlers API for channels
// (lib/api/handlers.ts), as tests/fixtures/channels_handlers.ts uses it. `conn.subscribe` in
// `open` subscribes a push.v1 client that sent no operation; `server.publish` returns the
// offsets the wire carries; `conn.unsubscribe` stops delivery and leaves presence; and a `fifo`
// handler routes lines of its own format to channels.

import assert from "node:assert/strict";
import {
  NOT_SUBSCRIBED,
  type PublishReceipt,
  RECEIPTS_CHANNEL,
  type UnsubscribeReceipt,
} from "../fixtures/channels_handlers.ts";
import { type ServerProcess, withServer } from "../support/server_process.ts";
import { type PushMessage, PushV1Client } from "../support/push_v1.ts";
import { closeWs, connectWs } from "../support/ws_client.ts";
import { PushClient } from "../../client/push-client.js";
import type { Publication } from "../../client/push-client.d.ts";

const HANDLERS = new URL("../fixtures/channels_handlers.ts", import.meta.url).pathname;
const ROOM = "lobby";

/** The path that has the fixture's `open` subscribe `user` to `room`. */
function roomPath(room: string, user: string): string {
  return `/?${new URLSearchParams({ room, user })}`;
}

/** Writes the fixture's `pub` line for each text. */
function publishLines(channel: string, texts: readonly string[]): string {
  return texts.map((text) => `pub|${channel}|${text}\n`).join("");
}

/** Takes `count` messages, in order. */
async function take(client: PushV1Client, count: number): Promise<PushMessage[]> {
  const messages: PushMessage[] = [];
  for (let i = 0; i < count; i++) messages.push(await client.next());
  return messages;
}

/** A publication as [channel, offset, data], to compare in one assertion. */
function triple(message: PushMessage): [unknown, unknown, unknown] {
  assert.equal(message.type, "publication", JSON.stringify(message));
  return [message.channel, message.offset, message.data];
}

/** Opens a client in `room` and checks that `subscribed` arrives without a subscribe sent. */
async function joinRoom(
  server: ServerProcess,
  { room, user }: { room: string; user: string },
): Promise<PushV1Client> {
  const client = await PushV1Client.open(server.port, roomPath(room, user));
  const first = await client.next();
  assert.deepStrictEqual(
    { ...first, epoch: typeof first.epoch },
    { type: "subscribed", channel: room, recovered: false, epoch: "string", offset: 0 },
  );
  return client;
}

/** Opens a client subscribed (by its own operation) to the fixture's receipts. */
async function watchReceipts(server: ServerProcess): Promise<PushV1Client> {
  const watcher = await PushV1Client.open(server.port);
  const reply = await watcher.subscribe(RECEIPTS_CHANNEL);
  assert.deepStrictEqual([reply.type, reply.channel], ["subscribed", RECEIPTS_CHANNEL]);
  return watcher;
}

Deno.test("conn.subscribe in open delivers a channel to a push.v1 client that sent no subscribe", async () => {
  await withServer([HANDLERS], async (server) => {
    const alice = await joinRoom(server, { room: ROOM, user: "alice" });
    assert.deepStrictEqual(await alice.flush(), [], "nothing else (no replay) before a publish");
    await server.writeFifo(publishLines(ROOM, ["one", "two", "three"]));
    assert.deepStrictEqual((await take(alice, 3)).map(triple), [
      [ROOM, 1, { text: "one" }],
      [ROOM, 2, { text: "two" }],
      [ROOM, 3, { text: "three" }],
    ]);
    await alice.end();
  });
});

Deno.test("server.publish returns each channel's offsets 1, 2, 3…, the ones its subscribers get", async () => {
  await withServer([HANDLERS], async (server) => {
    const alice = await joinRoom(server, { room: ROOM, user: "alice" });
    const watcher = await watchReceipts(server);
    await server.writeFifo(
      publishLines(ROOM, ["a", "b"]) + publishLines("other", ["c"]) + publishLines(ROOM, ["d"]),
    );
    const receipts = (await take(watcher, 4)).map(triple);
    const returned: PublishReceipt[] = [
      { published: ROOM, offset: 1 },
      { published: ROOM, offset: 2 },
      { published: "other", offset: 1 },
      { published: ROOM, offset: 3 },
    ];
    // The receipts channel's own offsets are what publish returned for it: 1, 2, 3, 4.
    assert.deepStrictEqual(receipts, returned.map((r, i) => [RECEIPTS_CHANNEL, i + 1, r]));
    const onTheWire = (await take(alice, 3)).map(triple);
    assert.deepStrictEqual(onTheWire, [
      [ROOM, 1, { text: "a" }],
      [ROOM, 2, { text: "b" }],
      [ROOM, 3, { text: "d" }],
    ]);
    assert.deepStrictEqual(
      onTheWire.map(([, offset]) => offset),
      returned.filter((r) => r.published === ROOM).map((r) => r.offset),
    );
    assert.deepStrictEqual(await alice.flush(), [], "`other` never reaches a lobby subscriber");
    await alice.end();
    await watcher.end();
  });
});

Deno.test("conn.unsubscribe stops delivery to that connection only, tells it, and leaves presence", async () => {
  await withServer([HANDLERS], async (server) => {
    const alice = await joinRoom(server, { room: ROOM, user: "alice" });
    const bob = await joinRoom(server, { room: ROOM, user: "bob" });
    const watcher = await watchReceipts(server);
    await server.writeFifo(`unsub|alice|${ROOM}\n` + publishLines(ROOM, ["after"]));

    const left: UnsubscribeReceipt = { unsubscribed: ROOM, user: "alice", results: [true] };
    assert.deepStrictEqual((await take(watcher, 2)).map(triple), [
      [RECEIPTS_CHANNEL, 1, left],
      [RECEIPTS_CHANNEL, 2, { published: ROOM, offset: 1 }],
    ]);
    assert.deepStrictEqual(triple(await bob.next()), [ROOM, 1, { text: "after" }]);
    // Fan-out happened before the ping is read: nothing of the channel after `unsubscribed`.
    assert.deepStrictEqual(await alice.flush(), [{ type: "unsubscribed", channel: ROOM }]);

    bob.send({ op: "presence", channel: ROOM });
    assert.deepStrictEqual(await bob.next(), {
      type: "presence",
      channel: ROOM,
      total: 1,
      users: [{ user: "bob", connections: 1 }],
    });

    // A second unsubscribe finds no subscription.
    await server.writeFifo(`unsub|alice|${ROOM}\n`);
    assert.deepStrictEqual(triple(await watcher.next()), [
      RECEIPTS_CHANNEL,
      3,
      { unsubscribed: ROOM, user: "alice", results: [false] },
    ]);
    for (const client of [alice, bob, watcher]) await client.end();
  });
});

Deno.test("conn.subscribe on a connection without push.v1 returns false and sends it nothing", async () => {
  await withServer([HANDLERS], async (server) => {
    const plain = await connectWs(server.port, roomPath(ROOM, "carol"));
    assert.deepStrictEqual(JSON.parse(String(await plain.next())), {
      type: NOT_SUBSCRIBED,
      channel: ROOM,
    });
    const alice = await joinRoom(server, { room: ROOM, user: "alice" });
    await server.writeFifo(publishLines(ROOM, ["only push.v1"]));
    assert.deepStrictEqual(triple(await alice.next()), [ROOM, 1, { text: "only push.v1" }]);
    await plain.roundTrip(); // the server has sent it everything it would by now
    assert.deepStrictEqual(plain.pending(), []);
    await closeWs(plain);
    await alice.end();
  });
});

Deno.test("the fifo handler's lines are its own: a channel command is not published", async () => {
  await withServer([HANDLERS], async (server) => {
    const alice = await joinRoom(server, { room: ROOM, user: "alice" });
    await server.writeFifo(
      JSON.stringify({ channel: ROOM, data: { text: "command" } }) + "\n" +
        publishLines(ROOM, ["routed"]),
    );
    assert.deepStrictEqual(triple(await alice.next()), [ROOM, 1, { text: "routed" }]);
    assert.deepStrictEqual(await alice.flush(), []);
    await server.waitForLog(/fixture: line dropped: \{"channel"/);
    await alice.end();
  });
});

/** Rejects when `promise` has not settled within `ms`, saying what did not happen. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const EVENT_WAIT_MS = 10_000;

Deno.test("the browser client shows a channel its handlers subscribed it to, until they end it", async () => {
  await withServer([HANDLERS], async (server) => {
    const client = new PushClient(`ws://127.0.0.1:${server.port}${roomPath(ROOM, "bob")}`);
    const seen: [string, number][] = [];
    let twoSeen = () => {};
    client.on("publication", (p: Publication) => {
      if (seen.push([p.channel, p.offset]) === 2) twoSeen();
    });
    const event = (type: "subscribed" | "unsubscribed") =>
      within(EVENT_WAIT_MS, type, new Promise<{ channel: string }>((r) => client.on(type, r)));
    const subscribed = event("subscribed");
    try {
      client.connect();
      assert.equal((await subscribed).channel, ROOM, "a subscription it never asked for");
      const two = within(EVENT_WAIT_MS, "2 publications", new Promise<void>((r) => twoSeen = r));
      await server.writeFifo(publishLines(ROOM, ["one", "two"]));
      await two;
      assert.deepStrictEqual(client.position(ROOM)?.offset, 2);
      const unsubscribed = event("unsubscribed");
      await server.writeFifo(`unsub|bob|${ROOM}\n`);
      assert.equal((await unsubscribed).channel, ROOM);
      assert.equal(client.position(ROOM), null, "forgotten: not asked for on a reconnect");
      assert.deepStrictEqual(seen, [[ROOM, 1], [ROOM, 2]]);
    } finally {
      client.close();
    }
  });
});

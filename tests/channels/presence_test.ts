// lib/channels/presence.ts: members per channel, join on a user's first connection, leave on the
// last, O(1) counts, and cleanup when a connection goes without unsubscribing.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Presence,
  type PresenceChange,
  presenceChangeMessage,
  presenceMessage,
} from "../../lib/channels/presence.ts";

const join = (channel: string, user: string): PresenceChange => ({ type: "join", channel, user });
const leave = (channel: string, user: string): PresenceChange => ({
  type: "leave",
  channel,
  user,
});

Deno.test("a user's first connection on a channel is a join; the second is not", () => {
  const p = new Presence<number>();
  assert.deepEqual(p.add(1, { channel: "news", user: "alice" }), join("news", "alice"));
  assert.equal(p.add(2, { channel: "news", user: "alice" }), null);
  assert.deepEqual(p.add(3, { channel: "news", user: "bob" }), join("news", "bob"));
  assert.equal(p.userCount("news"), 2);
  assert.equal(p.connectionCount("news"), 3);
  assert.deepEqual(p.members("news"), [
    { user: "alice", connections: 2 },
    { user: "bob", connections: 1 },
  ]);
});

Deno.test("a user's last connection leaving a channel is a leave; an earlier one is not", () => {
  const p = new Presence<number>();
  p.add(1, { channel: "news", user: "alice" });
  p.add(2, { channel: "news", user: "alice" });
  assert.equal(p.remove(1, "news"), null);
  assert.equal(p.has("news", "alice"), true);
  assert.deepEqual(p.remove(2, "news"), leave("news", "alice"));
  assert.equal(p.has("news", "alice"), false);
  assert.equal(p.userCount("news"), 0);
  assert.equal(p.channelCount, 0, "an empty channel is forgotten");
});

Deno.test("adding a connection twice, or removing one that is not there, changes nothing", () => {
  const p = new Presence<string>();
  p.add("c1", { channel: "news", user: "alice" });
  assert.equal(p.add("c1", { channel: "news", user: "alice" }), null);
  assert.equal(p.connectionCount("news"), 1);
  assert.equal(p.remove("c2", "news"), null);
  assert.equal(p.remove("c1", "sport"), null);
  assert.equal(p.connectionCount("news"), 1);
});

Deno.test("a connection that goes away leaves every channel it was on, once per user", () => {
  const p = new Presence<object>();
  const tab1 = {}, tab2 = {};
  p.add(tab1, { channel: "news", user: "alice" });
  p.add(tab1, { channel: "user:alice", user: "alice" });
  p.add(tab2, { channel: "news", user: "alice" });
  assert.deepEqual(p.removeConnection(tab1), [leave("user:alice", "alice")]);
  assert.deepEqual(p.channelsOf(tab1), []);
  assert.deepEqual(p.removeConnection(tab2), [leave("news", "alice")]);
  assert.deepEqual(p.removeConnection(tab2), []);
  assert.equal(p.channelCount, 0);
});

Deno.test("members lists at most `limit` users; counts stay the totals", () => {
  const p = new Presence<number>();
  for (let i = 0; i < 10; i++) p.add(i, { channel: "lobby", user: `u${i}` });
  assert.deepEqual(p.members("lobby", 3).map((m) => m.user), ["u0", "u1", "u2"]);
  assert.equal(p.userCount("lobby"), 10);
  assert.deepEqual(p.members("nowhere"), []);
});

type Op =
  | { readonly kind: "add"; readonly conn: number; readonly channel: string }
  | { readonly kind: "remove"; readonly conn: number; readonly channel: string }
  | { readonly kind: "close"; readonly conn: number };

Deno.test("property: presence equals a recount from the live subscriptions, and joins/leaves alternate per user", () => {
  const conns = fc.integer({ min: 0, max: 5 });
  const channels = fc.constantFrom("a", "b", "c");
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("add" as const), conn: conns, channel: channels }),
    fc.record({ kind: fc.constant("remove" as const), conn: conns, channel: channels }),
    fc.record({ kind: fc.constant("close" as const), conn: conns }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    // Connections 0–5 belong to three users: two connections each.
    const userOf = (conn: number) => `u${conn % 3}`;
    const p = new Presence<number>();
    const live = new Set<string>(); // "conn channel"
    const present = new Set<string>(); // "channel user", from the changes alone
    const apply = (change: PresenceChange | null) => {
      if (change === null) return;
      const key = `${change.channel} ${change.user}`;
      if (change.type === "join") {
        assert.ok(!present.has(key), `join twice: ${key}`);
        present.add(key);
      } else {
        assert.ok(present.has(key), `leave without join: ${key}`);
        present.delete(key);
      }
    };
    for (const o of ops) {
      if (o.kind === "add") {
        apply(p.add(o.conn, { channel: o.channel, user: userOf(o.conn) }));
        live.add(`${o.conn} ${o.channel}`);
      } else if (o.kind === "remove") {
        apply(p.remove(o.conn, o.channel));
        live.delete(`${o.conn} ${o.channel}`);
      } else {
        for (const change of p.removeConnection(o.conn)) apply(change);
        for (const key of [...live]) if (key.startsWith(`${o.conn} `)) live.delete(key);
      }
    }
    for (const channel of ["a", "b", "c"]) {
      const onChannel = [...live].filter((k) => k.endsWith(` ${channel}`))
        .map((k) => Number(k.split(" ")[0]));
      const users = new Set(onChannel.map(userOf));
      assert.equal(p.connectionCount(channel), onChannel.length);
      assert.equal(p.userCount(channel), users.size);
      for (const u of ["u0", "u1", "u2"]) {
        assert.equal(p.has(channel, u), users.has(u));
        assert.equal(present.has(`${channel} ${u}`), users.has(u), "changes replay to the table");
      }
    }
  }));
});

Deno.test("presence messages: a join/leave event and a capped presence reply with the total", () => {
  const p = new Presence<number>();
  for (let i = 0; i < 3; i++) p.add(i, { channel: "room.1", user: `u${i}` });
  p.add(9, { channel: "room.1", user: "u0" });
  assert.equal(
    presenceChangeMessage(join("room.1", "42")),
    '{"type":"join","channel":"room.1","user":"42"}',
  );
  assert.equal(
    presenceChangeMessage(leave("room.1", "42")),
    '{"type":"leave","channel":"room.1","user":"42"}',
  );
  assert.deepEqual(JSON.parse(presenceMessage(p, { channel: "room.1", limit: 2 })), {
    type: "presence",
    channel: "room.1",
    total: 3,
    users: [{ user: "u0", connections: 2 }, { user: "u1", connections: 1 }],
  });
  assert.deepEqual(JSON.parse(presenceMessage(p, { channel: "empty" })), {
    type: "presence",
    channel: "empty",
    total: 0,
    users: [],
  });
});

Deno.test("a presence reply echoes the query's id, string or number, right after its type", () => {
  const p = new Presence<number>();
  p.add(1, { channel: "room.1", user: "42" });
  assert.equal(
    presenceMessage(p, { channel: "room.1", id: 7 }),
    '{"type":"presence","id":7,"channel":"room.1","total":1,"users":[{"user":"42","connections":1}]}',
  );
  assert.equal(
    presenceMessage(p, { channel: "empty", id: "q" }),
    '{"type":"presence","id":"q","channel":"empty","total":0,"users":[]}',
  );
  assert.ok(!("id" in JSON.parse(presenceMessage(p, { channel: "empty" }))), "no id: none echoed");
});

// lib/auth/access.ts: the calls the server makes per push.v1 connection, played through as the
// server would: auth, subscribe, presence events, refresh, expiry, close.

import assert from "node:assert/strict";
import { Access } from "../../lib/auth/access.ts";
import { mintToken } from "../../lib/auth/mint.ts";
import { parseGrants } from "../../lib/policy/grants.ts";
import { AuthReason } from "../../lib/policy/auth_session.ts";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";

const KEY = new TextEncoder().encode("test-secret-0123456789abcdefghijklmnopqrstuvwxyz");
const NOW = 1_800_000_000_000;

function events(list: string[]) {
  const parsed = parseGrants(list);
  assert.ok(parsed.ok);
  return parsed.grants;
}

function token(sub: string, channels: string[], ttl = 3600, now = NOW) {
  return mintToken(KEY, { sub, channels, ttl, now });
}

Deno.test("two users on a room: joins and leaves as texts for rooms with events, none elsewhere", async () => {
  const access = new Access<string>({ keys: { HS256: KEY }, presenceEvents: events(["room.*"]) });
  for (const [conn, user] of [["tab-a", "alice"], ["tab-b", "bob"]]) {
    access.open(conn, { now: NOW });
    const outcome = await access.auth(conn, await token(user, ["room.*", "news"]), {
      now: NOW,
      subscribed: [],
    });
    assert.equal(outcome?.type, "authenticated");
    assert.deepEqual(access.authorize(conn, "room.1", NOW), { ok: true });
  }
  assert.deepEqual(access.subscribed("tab-a", "room.1"), {
    change: { type: "join", channel: "room.1", user: "alice" },
    message: '{"type":"join","channel":"room.1","user":"alice"}',
  });
  assert.deepEqual(
    access.subscribed("tab-b", "room.1")?.message,
    '{"type":"join","channel":"room.1","user":"bob"}',
  );
  // news has no events: the change is recorded, nothing is sent.
  assert.deepEqual(access.subscribed("tab-b", "news"), {
    change: { type: "join", channel: "news", user: "bob" },
    message: null,
  });
  assert.equal(access.presence.userCount("room.1"), 2);
  // bob's connection is dropped (no Close frame; the liveness timeout ends it).
  assert.deepEqual(access.closed("tab-b").map((n) => n.message), [
    '{"type":"leave","channel":"room.1","user":"bob"}',
    null,
  ]);
  assert.deepEqual(access.presence.members("room.1"), [{ user: "alice", connections: 1 }]);
  assert.equal(access.presence.userCount("news"), 0);
});

Deno.test("tokens required: an op before auth, a bad token, and a channel outside the grant", async () => {
  const access = new Access<number>({ keys: { HS256: KEY } });
  access.open(1, { now: NOW });
  assert.deepEqual(access.admit(1, NOW), {
    ok: false,
    type: "close",
    code: PushCloseCode.UNAUTHORIZED,
    reason: AuthReason.AUTH_REQUIRED,
  });
  access.open(2, { now: NOW });
  assert.deepEqual(await access.auth(2, "not-a-token", { now: NOW, subscribed: [] }), {
    type: "close",
    code: PushCloseCode.UNAUTHORIZED,
    reason: "token malformed",
  });
  access.open(3, { now: NOW });
  await access.auth(3, await token("42", ["news"]), { now: NOW, subscribed: [] });
  assert.deepEqual(access.authorize(3, "admin", NOW), {
    ok: false,
    type: "error",
    code: PushCloseCode.FORBIDDEN,
    reason: "channel not granted",
  });
});

Deno.test("expiry: the timer at deadline closes with 4004; a refresh before it moves the deadline", async () => {
  const access = new Access<number>({ keys: { HS256: KEY }, authTimeout: 5000 });
  access.open(1, { now: NOW });
  assert.equal(access.deadline(1), NOW + 5000);
  await access.auth(1, await token("42", ["news", "sport"], 60), { now: NOW, subscribed: [] });
  assert.equal(access.deadline(1), NOW + 60_000);
  access.subscribed(1, "sport");
  const at = NOW + 55_000;
  const refresh = await access.auth(1, await token("42", ["news"], 60, at), {
    now: at,
    subscribed: ["sport"],
  });
  assert.deepEqual(refresh, {
    type: "authenticated",
    user: "42",
    expiresAt: at + 60_000,
    refreshed: true,
    revoked: ["sport"],
  });
  assert.equal(access.unsubscribed(1, "sport")?.change.type, "leave");
  assert.equal(access.tick(1, NOW + 60_000), null, "the old deadline passed harmlessly");
  assert.deepEqual(access.tick(1, at + 60_000), {
    type: "close",
    code: PushCloseCode.TOKEN_EXPIRED,
    reason: "token expired",
  });
});

Deno.test("no keys: no auth step, the upgrade identity is the presence user, auth answers null", async () => {
  const access = new Access<number>({ keys: undefined, presenceEvents: events(["*"]) });
  access.open(1, { now: NOW, identity: "7" });
  access.open(2, { now: NOW });
  assert.equal(access.required, false);
  assert.equal(access.deadline(1), null);
  assert.deepEqual(access.authorize(1, "anything", NOW), { ok: true });
  assert.equal(
    access.subscribed(1, "anything")?.message,
    '{"type":"join","channel":"anything","user":"7"}',
  );
  assert.equal(access.subscribed(2, "anything"), null, "anonymous connections are not members");
  assert.equal(await access.auth(1, "x", { now: NOW, subscribed: [] }), null);
});

Deno.test("a connection closed while its token was being checked gets null, and is not resurrected", async () => {
  const access = new Access<number>({ keys: { HS256: KEY } });
  access.open(1, { now: NOW });
  const pending = access.auth(1, await token("42", ["news"]), { now: NOW, subscribed: [] });
  access.closed(1);
  assert.equal(await pending, null);
  assert.equal(access.userOf(1), null);
  assert.equal(access.deadline(1), null);
});

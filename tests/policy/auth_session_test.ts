// lib/policy/auth_session.ts: the push.v1 auth handshake, refresh, grants on subscribe, and the
// deadlines (auth timeout, token expiry), fed with tokens verified by lib/auth/token.ts.

import assert from "node:assert/strict";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";
import { authedMessage, AuthReason, AuthSession } from "../../lib/policy/auth_session.ts";
import { verifyToken } from "../../lib/auth/token.ts";
import { mintToken } from "../../lib/auth/mint.ts";

const KEY = new TextEncoder().encode("test-secret-0123456789abcdefghijklmnopqrstuvwxyz");
const NOW = 1_800_000_000_000;
const AUTH_TIMEOUT = 10_000;
const HOUR_MS = 3_600_000;

async function token(
  options: { sub?: string; channels?: string[]; ttl?: number; now?: number } = {},
) {
  const jwt = await mintToken(KEY, {
    sub: options.sub ?? "42",
    channels: options.channels ?? ["news", "user:*"],
    ttl: options.ttl ?? 3600,
    now: options.now ?? NOW,
  });
  return verifyToken(jwt, { keys: { HS256: KEY }, now: options.now ?? NOW });
}

function session(): AuthSession {
  return new AuthSession({ required: true, now: NOW, authTimeout: AUTH_TIMEOUT });
}

Deno.test("a valid auth authenticates: user, expiry, and a deadline at the expiry", async () => {
  const s = session();
  assert.equal(s.state, "awaiting");
  assert.equal(s.deadline, NOW + AUTH_TIMEOUT);
  const outcome = s.accept(await token(), { now: NOW, subscribed: [] });
  assert.deepEqual(outcome, {
    type: "authenticated",
    user: "42",
    expiresAt: NOW + HOUR_MS,
    refreshed: false,
    revoked: [],
  });
  assert.equal(s.user, "42");
  assert.equal(s.deadline, NOW + HOUR_MS);
  assert.equal(
    authedMessage({ user: "42", expiresAt: NOW + HOUR_MS }),
    `{"type":"authed","user":"42","expiresAt":${NOW + HOUR_MS}}`,
  );
});

Deno.test("a refused token closes with its code and reason (4003 signature, 4004 expired)", async () => {
  const forged = await verifyToken(
    await mintToken(new TextEncoder().encode("x".repeat(40)), {
      sub: "42",
      channels: [],
      ttl: 60,
      now: NOW,
    }),
    { keys: { HS256: KEY }, now: NOW },
  );
  assert.deepEqual(session().accept(forged, { now: NOW, subscribed: [] }), {
    type: "close",
    code: PushCloseCode.UNAUTHORIZED,
    reason: "token signature invalid",
  });
  const expired = await verifyToken(
    await mintToken(KEY, { sub: "42", channels: [], ttl: 60, now: NOW - HOUR_MS }),
    { keys: { HS256: KEY }, now: NOW },
  );
  assert.deepEqual(session().accept(expired, { now: NOW, subscribed: [] }), {
    type: "close",
    code: PushCloseCode.TOKEN_EXPIRED,
    reason: "token expired",
  });
});

Deno.test("any operation before auth closes with 4003 auth required", () => {
  const s = session();
  assert.deepEqual(s.authorize("news", NOW), {
    ok: false,
    type: "close",
    code: PushCloseCode.UNAUTHORIZED,
    reason: AuthReason.AUTH_REQUIRED,
  });
  assert.equal(s.state, "closed");
  assert.equal(s.deadline, null);
});

Deno.test("no auth within the auth timeout closes with 4003 auth timeout", () => {
  const s = session();
  assert.equal(s.tick(NOW + AUTH_TIMEOUT - 1), null);
  assert.deepEqual(s.tick(NOW + AUTH_TIMEOUT), {
    type: "close",
    code: PushCloseCode.UNAUTHORIZED,
    reason: "auth timeout",
  });
});

Deno.test("a channel outside the grant is refused with error 4005 channel not granted; the connection stays", async () => {
  const s = session();
  s.accept(await token({ channels: ["news", "user:*"] }), { now: NOW, subscribed: [] });
  assert.deepEqual(s.authorize("news", NOW), { ok: true });
  assert.deepEqual(s.authorize("user:7", NOW), { ok: true }, "pattern grant");
  assert.deepEqual(s.authorize("sport", NOW), {
    ok: false,
    type: "error",
    code: PushCloseCode.FORBIDDEN,
    reason: "channel not granted",
  });
  assert.deepEqual(s.authorize("news.uk", NOW), {
    ok: false,
    type: "error",
    code: PushCloseCode.FORBIDDEN,
    reason: "channel not granted",
  });
  assert.equal(s.state, "authenticated");
});

Deno.test("a token that expires while connected closes with 4004 at its expiry", async () => {
  const s = session();
  s.accept(await token({ ttl: 60 }), { now: NOW, subscribed: [] });
  assert.equal(s.deadline, NOW + 60_000);
  assert.equal(s.tick(NOW + 59_999), null);
  assert.deepEqual(s.authorize("news", NOW + 59_999), { ok: true });
  // A late timer changes nothing: an operation at or after the expiry closes too.
  assert.deepEqual(s.authorize("news", NOW + 60_000), {
    ok: false,
    type: "close",
    code: PushCloseCode.TOKEN_EXPIRED,
    reason: "token expired",
  });
  assert.deepEqual(s.tick(NOW + 60_001), {
    type: "close",
    code: PushCloseCode.TOKEN_EXPIRED,
    reason: "token expired",
  });
});

Deno.test("a refresh before expiry moves the deadline and revokes channels no longer granted", async () => {
  const s = session();
  s.accept(await token({ ttl: 60, channels: ["news", "sport", "user:*"] }), {
    now: NOW,
    subscribed: [],
  });
  const later = NOW + 50_000;
  const refreshed = s.accept(await token({ ttl: 60, channels: ["news"], now: later }), {
    now: later,
    subscribed: ["news", "sport", "user:42"],
  });
  assert.deepEqual(refreshed, {
    type: "authenticated",
    user: "42",
    expiresAt: later + 60_000,
    refreshed: true,
    revoked: ["sport", "user:42"],
  });
  assert.equal(s.tick(NOW + 60_000), null, "the old expiry no longer applies");
  assert.equal(s.deadline, later + 60_000);
  assert.equal(s.authorize("sport", later).ok, false);
});

Deno.test("a refresh with another user's token closes with 4003", async () => {
  const s = session();
  s.accept(await token({ sub: "42" }), { now: NOW, subscribed: [] });
  assert.deepEqual(s.accept(await token({ sub: "43" }), { now: NOW, subscribed: [] }), {
    type: "close",
    code: PushCloseCode.UNAUTHORIZED,
    reason: "token refresh changed the user",
  });
});

Deno.test("without a key, sessions start authenticated with the upgrade identity, open to every channel", () => {
  const s = new AuthSession({
    required: false,
    now: NOW,
    authTimeout: AUTH_TIMEOUT,
    identity: "7",
  });
  assert.equal(s.state, "authenticated");
  assert.equal(s.user, "7");
  assert.equal(s.deadline, null);
  assert.deepEqual(s.authorize("anything", NOW + 10 * HOUR_MS), { ok: true });
  const anonymous = new AuthSession({ required: false, now: NOW, authTimeout: AUTH_TIMEOUT });
  assert.equal(anonymous.user, null);
});

Deno.test("once closed, every call answers the same close", () => {
  const s = session();
  const first = s.tick(NOW + AUTH_TIMEOUT);
  assert.ok(first);
  assert.deepEqual(s.admit(NOW + AUTH_TIMEOUT + 1), { ok: false, ...first });
  assert.deepEqual(s.tick(NOW + 2 * AUTH_TIMEOUT), first);
});

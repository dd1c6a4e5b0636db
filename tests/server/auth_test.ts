// Tests tokens and presence through the real server in-process, as a push.v1 client sees them:
// the close code and reason of each refusal, a channel outside the grant, a pattern grant,
// presence joins and leaves, and a presence cleaned up when a socket drops without a Close.

import assert from "node:assert/strict";
import { mintToken } from "../../lib/auth/mint.ts";
import { connectWs, type WsClient } from "../support/ws_client.ts";
import { withInProcessServer } from "../support/in_process.ts";
import { parsePushMessage } from "../support/push_v1.ts";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256!";
const KEY = new TextEncoder().encode(SECRET);
const inProcess = { sanitizeOps: false, sanitizeResources: false };

async function token(sub: string, channels: string[], opts: { ttl?: number; nbf?: number } = {}) {
  return await mintToken(KEY, {
    sub,
    channels,
    ttl: opts.ttl ?? 3600,
    now: Date.now(),
    notBefore: opts.nbf,
  });
}

/** Reads JSON messages until one of `type` arrives (others are skipped). */
async function next(client: WsClient, type: string): Promise<Record<string, unknown>> {
  for (;;) {
    const m = parsePushMessage(await client.next());
    if (m.type === type) return m;
  }
}

function withTokens(fn: (port: number) => Promise<void>, extra: string[] = []) {
  return withInProcessServer({
    args: ["--token-secret", SECRET, "--presence-events", "room.*", ...extra],
    tokenSecret: SECRET,
  }, ({ port }) => fn(port));
}

async function push(port: number): Promise<WsClient> {
  return await connectWs(port, "/", { protocols: "push.v1" });
}

Deno.test({
  name: "a valid HS256 token subscribes; a channel outside the grant gets 4005; patterns grant",
  ...inProcess,
  fn: () =>
    withTokens(async (port) => {
      const c = await push(port);
      c.ws.send(
        JSON.stringify({ op: "auth", token: await token("42", ["news", "user:42", "room.*"]) }),
      );
      assert.equal((await next(c, "authed")).user, "42");
      c.ws.send(
        JSON.stringify({ op: "subscribe", channels: { news: {}, "room.1": {}, secret: {} } }),
      );
      const seen = [await next(c, "subscribed"), await next(c, "subscribed")].map((m) => m.channel);
      assert.deepStrictEqual(seen.sort(), ["news", "room.1"]);
      const refused = await next(c, "error");
      assert.equal(refused.code, 4005);
      assert.equal(refused.channel, "secret");
      c.ws.close();
      await c.closed;
    }),
});

for (
  const [what, make, code, reason] of [
    [
      "a wrong signature",
      async () => (await token("1", ["a"])).slice(0, -2) + "xx",
      4003,
      /signature/,
    ],
    ["an expired token", () => token("1", ["a"], { ttl: -10 }), 4004, /expired/],
    ["a token not yet valid", () => token("1", ["a"], { nbf: 600 }), 4003, /not yet valid/],
    ["no token at all", null, 4003, /auth/],
  ] as const
) {
  Deno.test({
    name: `${what} is refused with close ${code} and a reason the page can read (close-code table)`,
    ...inProcess,
    fn: () =>
      withTokens(async (port) => {
        const c = await push(port);
        if (make) c.ws.send(JSON.stringify({ op: "auth", token: await make() }));
        else c.ws.send(JSON.stringify({ op: "subscribe", channels: { a: {} } }));
        const closed = await c.closed;
        assert.equal(closed.code, code);
        assert.match(closed.reason, reason);
      }),
  });
}

Deno.test({
  name: "with tokens on, a client without push.v1 is refused with 401 at the upgrade",
  ...inProcess,
  fn: () =>
    withTokens(async (port) => {
      await assert.rejects(connectWs(port, "/"), /401/);
    }),
});

Deno.test({
  name: "presence: a second user joins and leaves, and a dropped socket leaves too",
  ...inProcess,
  fn: () =>
    withTokens(async (port) => {
      const a = await push(port);
      a.ws.send(JSON.stringify({ op: "auth", token: await token("alice", ["room.*"]) }));
      await next(a, "authed");
      a.ws.send(JSON.stringify({ op: "subscribe", channels: { "room.1": {} } }));
      await next(a, "subscribed");
      const b = await push(port);
      b.ws.send(JSON.stringify({ op: "auth", token: await token("bob", ["room.*"]) }));
      await next(b, "authed");
      b.ws.send(JSON.stringify({ op: "subscribe", channels: { "room.1": {} } }));
      let join = await next(a, "join");
      if (join.user === "alice") join = await next(a, "join"); // Her own join comes first.
      assert.deepStrictEqual([join.channel, join.user], ["room.1", "bob"]);
      a.ws.send(JSON.stringify({ op: "presence", id: "who", channel: "room.1" }));
      const list = await next(a, "presence");
      assert.equal(list.total, 2);
      assert.equal(list.id, "who", "the reply echoes the query's id");
      // Bob's socket goes without a Close frame: the server notices the end of TCP.
      b.ws.terminate();
      const leave = await next(a, "leave");
      assert.deepStrictEqual([leave.channel, leave.user], ["room.1", "bob"]);
      a.ws.close();
      await a.closed;
    }),
});

Deno.test({
  name:
    "a refresh for the same user is answered with authed and a later expiry; another user gets 4003",
  ...inProcess,
  fn: () =>
    withTokens(async (port) => {
      const c = await push(port);
      c.ws.send(JSON.stringify({ op: "auth", token: await token("42", ["news"], { ttl: 60 }) }));
      const first = await next(c, "authed");
      c.ws.send(JSON.stringify({ op: "subscribe", channels: { news: {} } }));
      await next(c, "subscribed");
      c.ws.send(JSON.stringify({ op: "auth", token: await token("42", ["news"], { ttl: 120 }) }));
      const refreshed = await next(c, "authed");
      assert.equal(refreshed.user, "42");
      assert.ok((refreshed.expiresAt as number) > (first.expiresAt as number));
      c.ws.send(JSON.stringify({ op: "ping", id: 1 }));
      assert.equal((await next(c, "pong")).id, 1, "the connection is still open");
      c.ws.send(JSON.stringify({ op: "auth", token: await token("7", ["news"]) }));
      const closed = await Promise.race([
        c.closed,
        next(c, "authed").then(() => assert.fail("a refresh changed the user")),
      ]);
      assert.deepStrictEqual([closed.code, closed.reason], [
        4003,
        "token refresh changed the user",
      ]);
    }),
});

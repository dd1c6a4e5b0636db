// Tests the browser client (client/push-client.js, run in Deno with its global WebSocket) against
// the real server in-process with tokens on: a token refreshed before its expiry keeps the one
// connection open past that expiry, with publications still arriving; two presence queries on one
// channel each resolve with the reply to their own id.

import assert from "node:assert/strict";
import { PushClient } from "../../client/push-client.js";
import type { Authed, Presence, Publication, StateChange } from "../../client/push-client.d.ts";
import { mintToken } from "../../lib/auth/mint.ts";
import { withInProcessServer } from "../support/in_process.ts";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256!";
const KEY = new TextEncoder().encode(SECRET);
const inProcess = { sanitizeOps: false, sanitizeResources: false };
/** The tokens' lifetime in seconds: `exp` is whole seconds, so 2 to 3 s from minting. */
const TTL_S = 3;
/** How long past the first token's expiry the connection must stay up: the server's shared
 * timer closes an expired connection within a second. */
const PAST_EXPIRY_MS = 1500;
/** The pause between two publications while the test waits for time to pass. */
const PUBLISH_EVERY_MS = 200;

function withTokens(
  fn: (server: { publish(c: string, d: unknown): number; port: number }) => Promise<void>,
) {
  return withInProcessServer({
    args: ["--token-secret", SECRET],
    tokenSecret: SECRET,
  }, ({ server, port }) => fn({ publish: (c, d) => server.publish(c, d), port }));
}

/** Resolves with the next event of `type` that satisfies `predicate`. */
function next<T>(client: PushClient, type: string, predicate: (d: T) => boolean = () => true) {
  return new Promise<T>((resolve) => {
    // deno-lint-ignore no-explicit-any
    const off = client.on(type as any, (detail: any) => {
      if (predicate(detail)) {
        off();
        resolve(detail);
      }
    });
  });
}

Deno.test({
  name:
    "a function token is refreshed on the open connection: no 4004, no reconnect, publications go on past the first expiry",
  ...inProcess,
  fn: () =>
    withTokens(async ({ publish, port }) => {
      let minted = 0;
      const client = new PushClient(`ws://127.0.0.1:${port}/`, {
        token: () => {
          minted++;
          return mintToken(KEY, { sub: "42", channels: ["news"], ttl: TTL_S, now: Date.now() });
        },
      });
      const states: StateChange[] = [];
      const authed: Authed[] = [];
      const got: number[] = [];
      client.on("state", (s) => states.push(s));
      client.on("authed", (a) => authed.push(a));
      client.on("publication", (p: Publication) => got.push(p.data as number));
      try {
        client.subscribe("news");
        const subscribed = next(client, "subscribed");
        client.connect();
        await subscribed;
        const firstExpiry = authed[0].expiresAt;
        let sent = 0;
        while (Date.now() < firstExpiry + PAST_EXPIRY_MS) {
          const n = ++sent;
          const arrived = next<Publication>(client, "publication", (p) => p.data === n);
          publish("news", n);
          await arrived;
          await new Promise((r) => setTimeout(r, PUBLISH_EVERY_MS));
        }
        assert.deepStrictEqual(got, Array.from({ length: sent }, (_, i) => i + 1));
        assert.deepStrictEqual(
          states.map((s) => s.state),
          ["connecting", "open"],
          "one connection, never closed",
        );
        assert.ok(authed.length >= 2, `${authed.length} authed replies`);
        assert.ok(minted >= 2, "the token function was called again");
        assert.ok(authed.every((a) => a.user === "42"));
        assert.ok(authed[1].expiresAt > firstExpiry, "the refresh moved the expiry");
        assert.equal(client.state, "open");
      } finally {
        client.close();
      }
    }),
});

Deno.test({
  name: "two presence queries on one channel through the real server resolve by their own ids",
  ...inProcess,
  fn: () =>
    withTokens(async ({ port }) => {
      const client = new PushClient(`ws://127.0.0.1:${port}/`, {
        token: () =>
          mintToken(KEY, { sub: "42", channels: ["room.*"], ttl: 3600, now: Date.now() }),
      });
      try {
        client.subscribe("room.1");
        const subscribed = next(client, "subscribed");
        client.connect();
        await subscribed;
        const [a, b] = await Promise.all([client.presence("room.1"), client.presence("room.1")]);
        const expected = { type: "presence", channel: "room.1", total: 1 };
        for (const reply of [a, b] as Presence[]) {
          const { id: _, users, ...rest } = reply;
          assert.deepStrictEqual(rest, expected);
          assert.deepStrictEqual(users, [{ user: "42", connections: 1 }]);
        }
        assert.equal(typeof a.id, "number");
        assert.equal(typeof b.id, "number");
        assert.notEqual(a.id, b.id, "each query got the reply to its own id");
      } finally {
        client.close();
      }
    }),
});

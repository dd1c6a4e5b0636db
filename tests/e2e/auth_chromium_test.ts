// End to end in real Chromium through the real server process (main.ts with PUSH_TOKEN_SECRET and
// --presence-events room.*): pages served by push-server load the browser client from
// /push-client.js with a JWT minted by lib/auth/mint.ts. A page with a valid token is named in
// `authed`, subscribes and receives a publication, and is refused a channel outside its grant; a
// second page appears in the first page's presence, with a join and (when its tab closes) a leave
// on the first page; a page with an expired token shows the close code 4004 and its reason.

import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { mintToken } from "../../lib/auth/mint.ts";
import { chromiumFor, launchChromium } from "../support/browser.ts";
import { type ServerProcess, startServer } from "../support/server_process.ts";

const chromium = chromiumFor(
  "push-client.js auth and presence in Chromium against the real server",
);
const SECRET = "e2e-secret-of-at-least-thirty-two-characters";
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env"];
const ROOM = "room.1";
const HOUR_S = 3600;
const WAIT_MS = 15_000;

/** A token for `sub` granting `room.*`, valid for an hour from `now` (ms). */
function token(sub: string, now = Date.now()): Promise<string> {
  return mintToken(new TextEncoder().encode(SECRET), {
    sub,
    channels: ["room.*"],
    ttl: HOUR_S,
    now,
  });
}

/** What the page keeps on globalThis: every client event in order, tagged with its name. */
interface PageGlobals {
  events: Record<string, unknown>[];
  push: {
    user: string | null;
    presence(channel: string): Promise<unknown>;
  };
}

/** The little of the DOM the page script uses (Deno's type check has no DOM library). */
interface PageDocument {
  createElement(tag: string): { id: string; textContent: string };
  readonly body: { append(node: unknown): void };
}

/**
 * Opens a tab on the server's start page, loads the client, records its events and connects with
 * `token`, subscribed to `channels`. A refusal is written into the page, as a site would show it.
 */
async function openPage(
  browser: Browser,
  server: ServerProcess,
  setup: { token: string; channels: string[] },
): Promise<{ tab: Page; errors: string[] }> {
  const tab = await browser.newPage();
  const errors: string[] = [];
  tab.on("pageerror", (e) => errors.push(String(e)));
  const start = await tab.goto(`http://127.0.0.1:${server.port}/`);
  assert.equal(start?.status(), 200);
  await tab.evaluate(async ({ url, token, channels }) => {
    const { PushClient } = await import("/push-client.js");
    const g = globalThis as unknown as PageGlobals;
    const push = new PushClient(url, { token, minDelay: 50, maxDelay: 400 });
    g.events = [];
    g.push = push;
    for (const on of ["authed", "subscribed", "publication", "error", "join", "leave", "state"]) {
      push.on(on, (detail: Record<string, unknown>) => g.events.push({ on, ...detail }));
    }
    push.on("state", (s: { state: string; code?: number; reason?: string }) => {
      if (s.state === "closed" && s.code !== undefined) {
        const { document } = globalThis as unknown as { document: PageDocument };
        const p = document.createElement("p");
        p.id = "refused";
        p.textContent = `refused: ${s.code} ${s.reason}`;
        document.body.append(p);
      }
    });
    for (const c of channels) push.subscribe(c);
    push.connect();
  }, { url: `ws://127.0.0.1:${server.port}/`, ...setup });
  return { tab, errors };
}

/** Waits until the page has recorded an event with every field of `want`. */
async function waitForEvent(tab: Page, want: Record<string, unknown>): Promise<void> {
  await tab.waitForFunction(
    (want: Record<string, unknown>) =>
      (globalThis as unknown as PageGlobals).events.some((e) =>
        Object.entries(want).every(([k, v]) => e[k] === v)
      ),
    want,
    { timeout: WAIT_MS },
  );
}

/** The real server with tokens on (PUSH_TOKEN_SECRET) and presence events for `room.*`. */
function startTokenServer() {
  return startServer({
    args: ["--presence-events", "room.*"],
    env: { PUSH_TOKEN_SECRET: SECRET },
    permissions: PERMISSIONS,
  });
}

function events(tab: Page): Promise<Record<string, unknown>[]> {
  return tab.evaluate(() => (globalThis as unknown as PageGlobals).events);
}

Deno.test({
  name:
    "in Chromium, a page with a valid token subscribes and gets a publication; a second page shows in its presence with join and leave",
  ignore: chromium === null,
  async fn() {
    const server = await startTokenServer();
    const browser = await launchChromium(chromium!);
    try {
      // (a) alice: authed, subscribed, refused outside her grant, and a publication arrives.
      const alice = await openPage(browser, server, {
        token: await token("alice"),
        channels: [ROOM, "news"],
      });
      await waitForEvent(alice.tab, { on: "subscribed", channel: ROOM });
      await waitForEvent(alice.tab, { on: "error", channel: "news" });
      await server.writeFifo(JSON.stringify({ channel: ROOM, data: { n: 1 } }) + "\n");
      await waitForEvent(alice.tab, { on: "publication", channel: ROOM, offset: 1 });
      const seen = await events(alice.tab);
      const authed = seen.find((e) => e.on === "authed")!;
      assert.equal(authed.user, "alice");
      assert.ok(typeof authed.expiresAt === "number" && authed.expiresAt > Date.now());
      assert.equal(
        await alice.tab.evaluate(() => (globalThis as unknown as PageGlobals).push.user),
        "alice",
      );
      const refusal = seen.find((e) => e.on === "error")!;
      assert.deepStrictEqual([refusal.code, refusal.channel], [4005, "news"]);
      const publication = seen.find((e) => e.on === "publication")!;
      assert.deepStrictEqual(publication.data, { n: 1 });

      // (b) bob joins room.1: alice gets a join, then sees both in presence.
      const bob = await openPage(browser, server, { token: await token("bob"), channels: [ROOM] });
      await waitForEvent(bob.tab, { on: "subscribed", channel: ROOM });
      await waitForEvent(alice.tab, { on: "join", channel: ROOM, user: "bob" });
      const { id, ...presence } = await alice.tab.evaluate(
        (channel) => (globalThis as unknown as PageGlobals).push.presence(channel),
        ROOM,
      ) as Record<string, unknown>;
      assert.equal(typeof id, "number", "the reply carries the query's id");
      assert.deepStrictEqual(presence, {
        type: "presence",
        channel: ROOM,
        total: 2,
        users: [{ user: "alice", connections: 1 }, { user: "bob", connections: 1 }],
      });
      // A presence query outside the grant is refused with 4005, and the page can read it.
      const outside = await alice.tab.evaluate(
        () =>
          (globalThis as unknown as PageGlobals).push.presence("news").then(
            () => null,
            (e: { code: number; channel: string }) => ({ code: e.code, channel: e.channel }),
          ),
      );
      assert.deepStrictEqual(outside, { code: 4005, channel: "news" });

      // Bob's tab closes: alice gets a leave, after the join, and presence lists her alone.
      await bob.tab.close();
      await waitForEvent(alice.tab, { on: "leave", channel: ROOM, user: "bob" });
      const order = (await events(alice.tab))
        .filter((e) => (e.on === "join" || e.on === "leave") && e.user === "bob")
        .map((e) => e.on);
      assert.deepStrictEqual(order, ["join", "leave"]);
      const { id: _, ...after } = await alice.tab.evaluate(
        (channel) => (globalThis as unknown as PageGlobals).push.presence(channel),
        ROOM,
      ) as Record<string, unknown>;
      assert.deepStrictEqual(after, {
        type: "presence",
        channel: ROOM,
        total: 1,
        users: [{ user: "alice", connections: 1 }],
      });
      assert.deepStrictEqual([...alice.errors, ...bob.errors], []);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "in Chromium, a page with an expired token is refused with close 4004 and the reason, both visible to the page",
  ignore: chromium === null,
  async fn() {
    const server = await startTokenServer();
    const browser = await launchChromium(chromium!);
    try {
      // Minted two hours ago with a one-hour lifetime: expired an hour ago.
      const expired = await token("carol", Date.now() - 2 * HOUR_S * 1000);
      const carol = await openPage(browser, server, { token: expired, channels: [ROOM] });
      await waitForEvent(carol.tab, { on: "state", state: "closed" });
      const closed = (await events(carol.tab)).filter((e) => e.on === "state").at(-1)!;
      assert.deepStrictEqual([closed.code, closed.reason], [4004, "token expired"]);
      assert.equal(await carol.tab.textContent("#refused"), "refused: 4004 token expired");
      const seen = await events(carol.tab);
      assert.ok(!seen.some((e) => e.on === "authed" || e.on === "subscribed"), "never admitted");
      assert.equal(
        seen.filter((e) => e.on === "state" && e.state === "connecting").length,
        1,
        "a string token that expired is not retried",
      );
      assert.deepStrictEqual(carol.errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

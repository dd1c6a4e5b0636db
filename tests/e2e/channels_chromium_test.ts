// End to end in real Chromium through the real server: a page served by push-server loads the
// browser client from /push-client.js, subscribes to `news` and `user:42`; the server is SIGKILLed
// and restarted on the same port while a writer keeps writing (writes fail while it is down and
// the writer retries them); every line the server accepted arrives on the page exactly once and
// in order, and no channel is reported lost.

import assert from "node:assert/strict";
import { chromiumFor, launchChromium } from "../support/browser.ts";
import { numbers, PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const chromium = chromiumFor("push-client.js in Chromium against the real server");
const CHANNELS = ["news", "user:42"] as const;
const TOTAL = 150;
const KILL_AT = 60;
const RETRY_MS = 20;

function line(n: number): string {
  const channel = n % 4 === 0 ? "user:42" : "news";
  return JSON.stringify({ channel, data: { n } }) + "\n";
}

/** Everything the server accepted on `channel`: its whole history, read from offset 0. */
async function history(port: number, channel: string, last: number): Promise<number[]> {
  const probe = await PushV1Client.open(port);
  const { epoch } = await probe.subscribe(channel);
  probe.close();
  const reader = await PushV1Client.open(port);
  const sub = await reader.subscribe(channel, { epoch: epoch as string, offset: 0 });
  assert.equal(sub.recovered, true);
  while (numbers(reader.received).at(-1) !== last) await reader.next();
  reader.close();
  return numbers(reader.received);
}

Deno.test({
  name:
    "in Chromium through the real server, a page on two channels gets every accepted line once, in order, across kill -9",
  ignore: chromium === null,
  async fn() {
    const server = await RestartableServer.create();
    const browser = await launchChromium(chromium!);
    try {
      const tab = await browser.newPage();
      const pageErrors: string[] = [];
      tab.on("pageerror", (e) => pageErrors.push(String(e)));
      const start = await tab.goto(`http://127.0.0.1:${server.port}/`);
      assert.equal(start?.status(), 200);
      await tab.evaluate(async ({ url, channels }) => {
        const { PushClient } = await import("/push-client.js");
        const g = globalThis as unknown as Record<string, unknown>;
        const got: Record<string, number[]> = Object.fromEntries(channels.map((c) => [c, []]));
        const lost: string[] = [];
        const states: string[] = [];
        Object.assign(g, { got, lost, states });
        const push = new PushClient(url, { minDelay: 50, maxDelay: 400 });
        push.on("publication", (p: { channel: string; data: { n: number } }) => {
          got[p.channel].push(p.data.n);
        });
        push.on("lost", (l: { channel: string }) => lost.push(l.channel));
        push.on("state", (s: { state: string }) => states.push(s.state));
        for (const c of channels) push.subscribe(c);
        await new Promise<void>((resolve) => {
          let subscribed = 0;
          push.on("subscribed", () => ++subscribed === channels.length && resolve());
          push.connect();
        });
      }, { url: `ws://127.0.0.1:${server.port}/`, channels: [...CHANNELS] });

      // The writer: one line per write; a failed write (server down) is retried.
      let failures = 0;
      let restart: Promise<void> | null = null;
      for (let n = 1; n <= TOTAL;) {
        if (await tryWriteFifo(server.fifo, line(n))) {
          if (n === KILL_AT) {
            await server.kill();
            restart = server.start(); // comes back while the writer keeps trying
          }
          n++;
        } else {
          failures++;
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        }
      }
      await restart;
      assert.ok(failures >= 1, "a write failed while the server was down");
      // The last line of each channel marks the end.
      const ends = { news: TOTAL + 1, "user:42": TOTAL + 4 - ((TOTAL + 4) % 4) };
      for (const end of Object.values(ends)) assert.ok(await tryWriteFifo(server.fifo, line(end)));

      const accepted = {
        news: await history(server.port, "news", ends.news),
        "user:42": await history(server.port, "user:42", ends["user:42"]),
      };
      await tab.waitForFunction(
        (want: Record<string, number>) => {
          const got = (globalThis as unknown as { got: Record<string, number[]> }).got;
          return Object.entries(want).every(([c, end]) => got[c].at(-1) === end);
        },
        ends,
        { timeout: 20_000 },
      );
      const page = await tab.evaluate(() => {
        const g = globalThis as unknown as { got: unknown; lost: unknown; states: string[] };
        return { got: g.got, lost: g.lost, reconnected: g.states.includes("reconnecting") };
      });
      assert.deepStrictEqual(page, { got: accepted, lost: [], reconnected: true });
      const all = [...accepted.news, ...accepted["user:42"]];
      for (const list of Object.values(accepted)) {
        assert.ok(list.every((n, i) => i === 0 || n > list[i - 1]), "accepted in write order");
      }
      const kept = new Set(all);
      const missing = Array.from({ length: TOTAL }, (_, i) => i + 1).filter((n) => !kept.has(n));
      assert.ok(
        missing.every((n) => n <= KILL_AT),
        `only lines in the pipe at the kill: ${missing}`,
      );
      console.log(`accepted ${all.length - 2}/${TOTAL} lines; failed writes: ${failures}`);
      assert.deepStrictEqual(pageErrors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

// examples/channels.html in real Chromium against the real server: served from another origin
// (as the web application would serve it), it imports /push-client.js from push-server (a CORS
// module fetch), shows the connection state and the publications, the
// close code of a SIGKILLed server, the reconnect, and the publications resumed after it.

import assert from "node:assert/strict";
import { chromiumFor, launchChromium } from "../support/browser.ts";
import { RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const chromium = chromiumFor("examples/channels.html in Chromium");
const PAGE = new URL("../../examples/channels.html", import.meta.url);
const WAIT_MS = 15_000;
/** The page's reconnect backoff is capped (?maxDelay) so that a loaded machine cannot push the
 * next attempt past the wait. */
const MAX_DELAY_MS = 2_000;
const RECONNECT_WAIT_MS = 30_000;

function line(n: number): string {
  return JSON.stringify({ channel: "news", data: { n } }) + "\n";
}

Deno.test({
  name: "channels.html shows state, publications, the close code and the reconnect across kill -9",
  ignore: chromium === null,
  async fn() {
    const server = await RestartableServer.create();
    const html = await Deno.readTextFile(PAGE);
    const site = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } }),
    );
    const browser = await launchChromium(chromium!);
    try {
      const tab = await browser.newPage();
      const url =
        `http://127.0.0.1:${site.addr.port}/channels.html?channel=news&maxDelay=${MAX_DELAY_MS}&server=ws://127.0.0.1:${server.port}/`;
      const problems: string[] = [];
      tab.on("pageerror", (e) => problems.push(String(e)));
      tab.on("console", (m) => m.type() === "error" && problems.push(m.text()));
      await tab.goto(url);
      const text = (selector: string) => tab.locator(selector).innerText();
      const publications = () => tab.locator("#publications li").allInnerTexts();
      await tab.locator(`#state[data-state="open"]`).waitFor({ timeout: WAIT_MS }).catch((e) => {
        throw new Error(`${e.message}; page: ${problems.join("; ")}`);
      });
      await tab.locator("#events li", { hasText: "subscribed to news" }).waitFor();

      assert.ok(await tryWriteFifo(server.fifo, line(1) + line(2)));
      await tab.locator("#publications li").nth(1).waitFor({ timeout: WAIT_MS });
      assert.deepStrictEqual(await publications(), ['{"n":1}', '{"n":2}']);

      await server.kill();
      await tab.locator('#state[data-state="reconnecting"]').waitFor({ timeout: WAIT_MS });
      assert.match(await text("#events li:first-child"), /reconnecting \(close 1006\)/);
      await server.start();
      assert.ok(await tryWriteFifo(server.fifo, line(3)));
      await tab.locator("#publications li").nth(2).waitFor({ timeout: RECONNECT_WAIT_MS }).catch(
        async (e) => {
          const events = await tab.locator("#events li").allInnerTexts();
          throw new Error(
            `${e.message}; page: ${problems.join("; ")}; events: ${
              events.join(" | ")
            }; publications: ${(await publications()).join(" ")}`,
          );
        },
      );
      assert.deepStrictEqual(await publications(), ['{"n":1}', '{"n":2}', '{"n":3}']);
      assert.equal(await text("#state"), "open");
      assert.ok(Number(await text("#reconnects")) >= 1);
      assert.match(await text("#position"), /\/3$/);
      assert.equal(await tab.locator("#events li.lost").count(), 0, "nothing was lost");
    } finally {
      await browser.close();
      await site.shutdown();
      await server.stop();
    }
  },
});

// A real browser (headless Chromium through playwright-core) connects to the real server, and a
// line written to the FIFO arrives on the page. Skipped, saying why, where Chromium is missing.

import assert from "node:assert/strict";
import { launchChromium, serveBlankPage } from "./support/browser.ts";
import { startServer } from "./support/server_process.ts";
import { toolFor } from "./support/tools.ts";

// Found on PATH (Debian: apt-get install -y chromium), so hiding it from PATH skips the test.
const CHROMIUM = toolFor("chromium", "headless Chromium test (apt-get install -y chromium)");

Deno.test({
  name: "headless Chromium receives a FIFO line over the server's WebSocket (RFC 6455 §4, §5)",
  ignore: CHROMIUM === null,
  async fn() {
    const server = await startServer();
    const site = serveBlankPage();
    const browser = await launchChromium(CHROMIUM!);
    try {
      const tab = await browser.newPage();
      await tab.goto(site.url);
      const opened = tab.evaluate((url: string) => {
        return new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(url);
          const g = globalThis as unknown as { received: Promise<string> };
          g.received = new Promise((done) => {
            ws.onmessage = (e) => done(String(e.data));
          });
          ws.onopen = () => resolve();
          ws.onerror = () => reject(new Error("the page's WebSocket failed"));
        });
      }, `ws://127.0.0.1:${server.port}/`);
      await opened;
      await server.waitForLog(/connection \d+ open/);
      await server.writeFifo("héllo from the FIFO\n");
      const received = await tab.evaluate(() =>
        (globalThis as unknown as { received: Promise<string> }).received
      );
      assert.equal(received, "héllo from the FIFO");
      // The browser's own ping/close path: a clean close with 1000 comes back.
      const code = await tab.evaluate((url: string) =>
        new Promise<number>((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => ws.close(1000, "bye");
          ws.onclose = (e) => resolve(e.wasClean ? e.code : -e.code);
        }), `ws://127.0.0.1:${server.port}/`);
      assert.equal(code, 1000);
    } finally {
      await browser.close();
      await site.shutdown();
      await server.stop();
    }
  },
});

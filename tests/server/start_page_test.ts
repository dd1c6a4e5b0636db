// Tests the start page of the public port: served at / in the embedded default (no handlers
// file), off with a handlers file or --page off, and in real Chromium it shows FIFO lines.

import assert from "node:assert/strict";
import { pageEnabled, publicResources } from "../../lib/server/resources.ts";
import { chromiumFor, launchChromium } from "../support/browser.ts";
import { withInProcessServer } from "../support/in_process.ts";
import { RawClient } from "../support/raw_client.ts";
import { startServer } from "../support/server_process.ts";

const CHROMIUM = chromiumFor("start page in Chromium");

Deno.test("the start page is on by default only without a handlers file", () => {
  assert.equal(pageEnabled({ page: "auto", handlers: undefined }), true);
  assert.equal(pageEnabled({ page: "auto", handlers: "echo" }), false);
  assert.equal(pageEnabled({ page: "on", handlers: "echo" }), true);
  assert.equal(pageEnabled({ page: "off", handlers: undefined }), false);
});

async function get(port: number, path: string): Promise<{ status: number }> {
  const c = await RawClient.connect(port);
  try {
    await c.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const res = await c.readResponse();
    return { status: res.status };
  } finally {
    c.close();
  }
}

Deno.test({
  name: "GET / serves the page when it is on, and 426 when it is off (RFC 6455 §4.2.2)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const on = await publicResources({ page: "on", handlers: undefined });
    await withInProcessServer({ resources: on }, async ({ port }) => {
      const res = await get(port, "/");
      assert.equal(res.status, 200);
      const plain = await get(port, "/elsewhere");
      assert.equal(plain.status, 426);
    });
    const off = await publicResources({ page: "off", handlers: undefined });
    await withInProcessServer({ resources: off }, async ({ port }) => {
      assert.equal((await get(port, "/")).status, 426);
    });
  },
});

Deno.test({
  name: "the start page in Chromium shows a FIFO line and the connection state",
  ignore: CHROMIUM === null,
  async fn() {
    const server = await startServer();
    const browser = await launchChromium(CHROMIUM!);
    try {
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${server.port}/`);
      // Evaluated in the page (as strings: the test's own scope does not travel there).
      await tab.waitForFunction(`document.getElementById("state").textContent === "open"`);
      await server.writeFifo("hello from the FIFO\n");
      await tab.waitForFunction(
        `document.getElementById("messages").textContent.includes("hello from the FIFO")`,
      );
    } finally {
      await browser.close();
      await server.stop();
    }
  },
});

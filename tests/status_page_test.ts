// The status page in real Chromium (playwright-core): it renders from /status.json alone, its
// charts draw, its screenshot is not blank, and every number it shows matches /metrics.
// Set STATUS_SCREENSHOT=examples/status-page.png to keep the screenshot (the README's picture).

import assert from "node:assert/strict";
import { launchChromium } from "./support/browser.ts";
import { startAdminServer } from "../lib/admin/admin_server.ts";
import { createLogger } from "../lib/api/log.ts";
import { createMetrics } from "../lib/metrics/metrics.ts";
import { PushStats } from "../lib/metrics/stats.ts";
import { sampleValue } from "./support/metrics_text.ts";
import { toolFor } from "./support/tools.ts";

const chromiumPath = toolFor("chromium", "status page in Chromium");

/** About the history's 120 samples, so the charts span the whole traffic. */
const TRAFFIC_STEPS = 100;
const SAMPLE_MS = 50;

/**
 * Counts the colours of a PNG and its share of non-white pixels, decoded by the browser
 * (source text: this project type-checks without the DOM library).
 */
const PIXEL_STATS = `async (base64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + base64;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const data = g.getImageData(0, 0, img.width, img.height).data;
  const colours = new Set();
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) {
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    if (data[i] < 200 || data[i + 1] < 200 || data[i + 2] < 200) inked++;
  }
  return { colours: colours.size, inked: inked / (data.length / 4), width: img.width };
}`;

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

Deno.test({
  name: "status page renders in Chromium, draws its charts, and its numbers match /metrics",
  ignore: chromiumPath === null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const stats = new PushStats();
    let open = 0;
    const metrics = createMetrics(stats, {
      sources: {
        connectionsOpen: () => open,
        bytesQueued: () => 3 * 65536,
        fifoOpen: () => true,
        channels: () => 3,
        subscriptions: () => open * 2,
      },
      processMetrics: false,
    });
    const admin = startAdminServer({
      listen: "127.0.0.1:0",
      metrics,
      readiness: () => [],
      log: createLogger({ level: "error", write: () => {} }),
      title: "127.0.0.1:8080",
      sampleIntervalMs: SAMPLE_MS,
      status: {
        mostQueued: () => [
          { id: 812, remote: "10.1.4.7", queuedBytes: 131072 },
          { id: 97, remote: "10.1.9.33", queuedBytes: 65536 },
        ],
        busiestChannels: () => [
          { name: "prices", subscribers: open, publications: stats.publications },
          { name: "news", subscribers: Math.floor(open / 3), publications: 120 },
          { name: "chat:lobby", subscribers: 12, publications: 48 },
        ],
        fifo: () => ({ path: "/run/push-server/push.fifo", open: true }),
      },
    });
    if ("error" in admin) throw new Error(admin.error);
    const origin = `http://127.0.0.1:${admin.addr.port}`;

    const browser = await launchChromium(chromiumPath!);
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
      const foreign: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreign.push(r.url());
      });
      // Traffic that rises and falls, sampled by the admin server's history timer.
      for (let step = 0; step < TRAFFIC_STEPS; step++) {
        open = Math.round(900 + 500 * Math.sin(step / 12) + step * 8);
        stats.connectionsAccepted += 25;
        stats.messagesIn += 400 + (step % 7) * 50;
        stats.messagesOut += open * (3 + Math.round(2 * Math.cos(step / 7)));
        stats.bytesOut += open * 4 * 120;
        stats.fifoLinesRead += 4;
        stats.fifoBatches += 1;
        stats.publications += 4;
        if (step % 20 === 19) stats.slowConsumerCloses++;
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
      }
      stats.fifoDropped.add("too_long", 2);

      await page.goto(`${origin}/`);
      await page.waitForSelector("body[data-loaded='true']");

      // The numbers shown carry the raw value; each equals the sample /metrics serves.
      const shown = await page.$$eval(
        "[data-metric]",
        (els) => els.map((e) => [e.getAttribute("data-metric")!, e.getAttribute("data-value")]),
      );
      const text = await (await fetch(`${origin}/metrics`)).text();
      assert.ok(shown.length >= 8, `numbers on the page: ${shown.length}`);
      for (const [name, value] of shown) {
        assert.equal(Number(value), sampleValue(text, name), name);
      }
      assert.equal(await page.textContent("#state"), "ready");
      assert.match((await page.textContent("#slow")) ?? "", /10\.1\.4\.7.*128\.0 KiB/);
      assert.match((await page.textContent("#channels")) ?? "", /prices/);
      assert.equal(await page.textContent("#fifo-dropped"), "too_long: 2");

      const points = await page.$eval(
        "#chart-conn polyline",
        (el) => el.getAttribute("points")!.split(" ").length,
      );
      assert.ok(points >= 10, `connection chart has ${points} points`);
      const ratePoints = await page.$$eval("#chart-rate polyline", (els) => els.length);
      assert.equal(ratePoints, 2, "out and in");

      const png = await page.screenshot({ fullPage: true });
      const keep = Deno.env.get("STATUS_SCREENSHOT");
      if (keep) await Deno.writeFile(keep, png);
      const blank = await browser.newPage();
      await blank.goto(`${origin}/healthz`);
      const pixels: { colours: number; inked: number; width: number } = await blank.evaluate(
        `(${PIXEL_STATS})(${JSON.stringify(base64(png))})`,
      );
      assert.equal(pixels.width, 1200);
      assert.ok(pixels.colours > 50, `colours in the screenshot: ${pixels.colours}`);
      assert.ok(pixels.inked > 0.01, `share of non-white pixels: ${pixels.inked}`);
      assert.deepEqual(foreign, [], "the page fetches nothing from elsewhere");
    } finally {
      await browser.close();
      await admin.close();
    }
  },
});

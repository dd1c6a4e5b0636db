// End to end with the real browser client (client/push-client.js, run in Deno) against the real
// server in process: a client closed as a slow consumer (4000) reconnects at once and resumes,
// and a resume whose backlog is several times --max-queue is delivered whole, once and in order,
// without a `lost` event (lib/channels/PROTOCOL.md, "How resume works" and close code 4000).

import assert from "node:assert/strict";
import { PushClient } from "../../client/push-client.js";
import type { Position, Publication, StateChange } from "../../client/push-client.d.ts";
import type { Server } from "../../lib/api/handlers.ts";
import { withInProcessServer } from "../support/in_process.ts";

const MAX_QUEUE = 16 * 1024;
const ARGS = ["--max-message-size", String(MAX_QUEUE), "--max-queue", String(MAX_QUEUE)];
/** Each publication's data: about 1 KiB, so a backlog of N is about N KiB. */
const PAYLOAD = "x".repeat(1000);
/** A backlog this many times --max-queue. */
const BACKLOG_TIMES_MAX_QUEUE = 8;
const COUNT = Math.ceil((BACKLOG_TIMES_MAX_QUEUE * MAX_QUEUE) / PAYLOAD.length);
/** A backoff the test would notice: a reconnect that waited for it would time out the test. */
const MIN_DELAY_MS = 60_000;
/** More reconnects than this means the client is looping, not progressing. */
const MAX_RECONNECTS = 20;
const WAIT_MS = 20_000;
/** Publications made once the page sees the replay. */
const LIVE_COUNT = 5;

/** What the page sees: every event of the client, in order. */
interface PageView {
  readonly client: PushClient;
  readonly offsets: number[];
  readonly lost: unknown[];
  readonly states: StateChange[];
  /** Resolves when the page has seen offset `n` (rejects on a loop or after WAIT_MS). */
  reached(n: number): Promise<void>;
}

function openPage(port: number, channel: string, since: Position | null = null): PageView {
  const client = new PushClient(`ws://127.0.0.1:${port}/`, {
    minDelay: MIN_DELAY_MS,
    maxDelay: MIN_DELAY_MS,
  });
  const offsets: number[] = [];
  const lost: unknown[] = [];
  const states: StateChange[] = [];
  let wake = () => {};
  client.on("publication", (p: Publication) => {
    offsets.push(p.offset);
    wake();
  });
  client.on("lost", (detail) => lost.push(detail));
  client.on("state", (change: StateChange) => {
    states.push(change);
    wake();
  });
  client.subscribe(channel, since);
  const reached = async (n: number) => {
    const deadline = Date.now() + WAIT_MS;
    while (offsets.at(-1) !== n) {
      const reconnects = states.filter((c) => c.state === "reconnecting").length;
      if (reconnects > MAX_RECONNECTS) {
        throw new Error(`${reconnects} reconnects, still at ${offsets.at(-1)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only offsets up to ${offsets.at(-1)} within ${WAIT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return { client, offsets, lost, states, reached };
}

/** The epoch of `channel`, as a page that subscribes is told. */
async function epochOf(port: number, channel: string): Promise<string> {
  const page = openPage(port, channel);
  const reply = subscribed(page.client, channel);
  page.client.connect();
  const { epoch } = await reply;
  page.client.close();
  return epoch;
}

/** Resolves with the client's `subscribed` reply for `channel`. */
function subscribed(client: PushClient, channel: string): Promise<{ epoch: string }> {
  return new Promise((resolve) => {
    const off = client.on("subscribed", (m) => {
      if (m.channel !== channel) return;
      off();
      resolve(m);
    });
  });
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Publishes `count` publications of about 1 KiB to `channel` in this one synchronous turn. */
function publishTo(server: Server, channel: string, count: number): void {
  for (let n = 0; n < count; n++) server.publish(channel, { n, pad: PAYLOAD });
}

Deno.test("a client closed with 4000 reconnects at once and resumes: every offset once, in order, none lost", async () => {
  await withInProcessServer({ args: ARGS }, async (s) => {
    const page = openPage(s.port, "news");
    const ready = subscribed(page.client, "news");
    page.client.connect();
    await ready;
    // One synchronous turn: far more than --max-queue is queued before anything is written.
    publishTo(s.server, "news", COUNT);
    await page.reached(COUNT);
    page.client.close();

    const closes = page.states.filter((c) => c.code !== undefined);
    assert.equal(closes.length, 1, "one close (the burst's), and the resume needs no other");
    assert.equal(closes[0].code, 4000, "closed as a slow consumer");
    assert.equal(closes[0].state, "reconnecting", "4000 is followed by a reconnect");
    assert.equal(closes[0].delay, 0, "the reconnect is at once, not after a backoff");
    assert.deepStrictEqual(page.offsets, range(1, COUNT));
    assert.deepStrictEqual(page.lost, []);
  });
});

Deno.test("a resume whose backlog is several times --max-queue is paced: no 4000, every offset once, in order, then live", async () => {
  await withInProcessServer({ args: ARGS }, async (s) => {
    const epoch = await epochOf(s.port, "news");
    publishTo(s.server, "news", COUNT);
    const page = openPage(s.port, "news", { epoch, offset: 0 });
    // Published once the page sees the replay: live, they must follow it without a gap.
    const off = page.client.on("publication", () => {
      off();
      publishTo(s.server, "news", LIVE_COUNT);
    });
    page.client.connect();
    await page.reached(COUNT + LIVE_COUNT);
    page.client.close();

    assert.deepStrictEqual(page.states.filter((c) => c.code !== undefined), [], "no close");
    assert.deepStrictEqual(page.offsets, range(1, COUNT + LIVE_COUNT));
    assert.deepStrictEqual(page.lost, []);
  });
});

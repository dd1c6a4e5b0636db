// Tests the in-memory history (lib/channels/history.ts): offsets, epochs, trimming by count,
// age and bytes, and what a trim does to the floor with and without a durable store.

import assert from "node:assert/strict";
import { ENTRY_OVERHEAD_BYTES, History } from "../../lib/channels/history.ts";
import type { HistoryLimits } from "../../lib/channels/history.ts";

const LIMITS: HistoryLimits = { maxCount: 3, maxAgeMs: 1000, maxBytes: 1_000_000 };

function publish(history: History, channel: string, data: string, now = 0) {
  const pubs = history.prepare([{ channel, data }], now);
  history.commit(pubs);
  return pubs[0];
}

function offsets(history: History, channel: string, now = 0) {
  const view = history.view(channel);
  return history.read(channel, { from: 1, to: view.top, now }).memory.map((p) => p.offset);
}

Deno.test("offsets count from 1 per channel and only grow; a batch may hold a channel twice", () => {
  const history = new History({ epoch: "boot", durable: false, limits: LIMITS });
  assert.deepStrictEqual(history.view("news"), { epoch: "boot", top: 0, floor: 1 });
  const pubs = history.prepare([
    { channel: "news", data: "1" },
    { channel: "sport", data: "2" },
    { channel: "news", data: "3" },
  ], 5);
  assert.deepStrictEqual(pubs.map((p) => [p.channel, p.offset, p.epoch, p.time]), [
    ["news", 1, "boot", 5],
    ["sport", 1, "boot", 5],
    ["news", 2, "boot", 5],
  ]);
  assert.equal(history.view("news").top, 0, "prepare changes nothing");
  history.commit(pubs);
  assert.equal(history.view("news").top, 2);
  assert.throws(() => history.commit(pubs), /was not prepared/);
});

Deno.test("a channel keeps at most maxCount publications; the floor follows", () => {
  const history = new History({ epoch: "e", durable: false, limits: LIMITS });
  for (let i = 1; i <= 5; i++) publish(history, "news", String(i));
  assert.deepStrictEqual(offsets(history, "news"), [3, 4, 5]);
  assert.deepStrictEqual(history.view("news"), { epoch: "e", top: 5, floor: 3 });
  assert.equal(history.size, 3);
});

Deno.test("publications older than maxAge are trimmed; the floor follows", () => {
  const history = new History({ epoch: "e", durable: true, limits: LIMITS });
  publish(history, "a", "1", 0);
  publish(history, "b", "1", 500);
  publish(history, "a", "2", 900);
  history.trim(1400);
  assert.deepStrictEqual(offsets(history, "a", 1400), [2]);
  assert.deepStrictEqual(history.view("a"), { epoch: "e", top: 2, floor: 2 });
  assert.deepStrictEqual(offsets(history, "b", 1400), [1]);
  history.trim(1501);
  assert.deepStrictEqual(history.view("b"), { epoch: "e", top: 1, floor: 2 });
  assert.equal(history.size, 1);
});

Deno.test("read hides expired publications even before a trim", () => {
  const history = new History({ epoch: "e", durable: false, limits: LIMITS });
  publish(history, "a", "1", 0);
  publish(history, "a", "2", 600);
  assert.deepStrictEqual(offsets(history, "a", 1200), [2]);
});

Deno.test("the byte cap holds across channels, evicting the oldest first", () => {
  const size = 10 + 1 + ENTRY_OVERHEAD_BYTES;
  const limits = { maxCount: 100, maxAgeMs: 1e9, maxBytes: size * 4 };
  for (const durable of [false, true]) {
    const history = new History({ epoch: "e", durable, limits });
    for (let i = 0; i < 6; i++) publish(history, i % 2 ? "a" : "b", "x".repeat(10), i);
    assert.ok(history.bytes <= limits.maxBytes);
    assert.equal(history.size, 4);
    assert.deepStrictEqual(offsets(history, "b"), [2, 3]);
    assert.deepStrictEqual(offsets(history, "a"), [2, 3]);
    // Without a store, what left memory is lost; with one, it is still readable there.
    assert.equal(history.view("a").floor, durable ? 1 : 2);
    assert.deepStrictEqual(history.read("a", { from: 1, to: 3, now: 0 }).before, {
      from: 1,
      to: 1,
    });
  }
});

Deno.test("memory stays bounded under a long run of many channels", () => {
  const limits = { maxCount: 5, maxAgeMs: 50, maxBytes: 5000 };
  const history = new History({ epoch: "e", durable: false, limits });
  for (let i = 0; i < 20_000; i++) {
    publish(history, `c${i % 37}`, "y".repeat(i % 50), i);
    if (i % 100 === 0) history.trim(i);
    assert.ok(history.bytes <= limits.maxBytes);
  }
  for (let c = 0; c < 37; c++) {
    const view = history.view(`c${c}`);
    const got = offsets(history, `c${c}`, 20_000);
    assert.ok(got.length <= 5);
    if (got.length > 0) assert.equal(got.at(-1), view.top);
  }
});

Deno.test("renewEpoch moves every channel to the new epoch and keeps offsets growing", () => {
  const history = new History({ epoch: "e1", durable: true, limits: LIMITS });
  publish(history, "a", "1");
  publish(history, "a", "2");
  history.renewEpoch("e2", { durable: false });
  assert.deepStrictEqual(history.view("a"), { epoch: "e2", top: 2, floor: 3 });
  assert.deepStrictEqual(history.view("new"), { epoch: "e2", top: 0, floor: 1 });
  assert.equal(publish(history, "a", "3").offset, 3);
  assert.equal(history.size, 1);
});

Deno.test("seed restores a stored head; what is older than memory is read from the store", () => {
  const history = new History({ epoch: "boot", durable: true, limits: LIMITS });
  history.seed("a", { epoch: "old", top: 10 });
  assert.deepStrictEqual(history.view("a"), { epoch: "old", top: 10, floor: 8 });
  const pub = publish(history, "a", "x");
  assert.deepStrictEqual([pub.offset, pub.epoch], [11, "old"]);
  assert.deepStrictEqual(history.read("a", { from: 9, to: 11, now: 0 }).before, {
    from: 9,
    to: 10,
  });
});

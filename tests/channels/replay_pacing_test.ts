// Tests the pacing of replays (lib/channels/replay_pacing.ts): how much of a replay may be queued
// for a given queue fill, and the steps a connection's replays go through (send, wait, read,
// extend, idle), in the order they were asked for.

import assert from "node:assert/strict";
import type { Publication } from "../../lib/channels/history.ts";
import { encodePublication } from "../../lib/channels/protocol.ts";
import {
  mayQueueReplay,
  REPLAY_QUEUE_SHARE,
  ReplayPacer,
  type ReplayStep,
} from "../../lib/channels/replay_pacing.ts";
import { textFrameLength } from "../../lib/protocol/frame.ts";

const EPOCH = "e1";
const LIMIT = 1000;
const EMPTY = { queued: 0, limit: LIMIT };

function pubs(channel: string, from: number, to: number, data = '"x"'): Publication[] {
  const out: Publication[] = [];
  for (let offset = from; offset <= to; offset++) {
    out.push({ channel, offset, epoch: EPOCH, time: 0, data });
  }
  return out;
}

/** Runs steps with an unlimited queue until one is not "send"; returns the sent offsets. */
function sendAll(pacer: ReplayPacer): { sent: string[]; stop: ReplayStep } {
  const sent: string[] = [];
  for (;;) {
    const step = pacer.next(EMPTY);
    if (step.kind !== "send") return { sent, stop: step };
    sent.push(`${step.channel}:${step.offset}`);
  }
}

Deno.test("a replayed frame is queued into an empty queue always, else within the replay's share", () => {
  const share = LIMIT * REPLAY_QUEUE_SHARE;
  assert.equal(mayQueueReplay(10 * LIMIT, EMPTY), true, "an empty queue takes any frame");
  assert.equal(mayQueueReplay(share - 1, { queued: 1, limit: LIMIT }), true);
  assert.equal(mayQueueReplay(share, { queued: 1, limit: LIMIT }), false);
  assert.equal(mayQueueReplay(1, { queued: share, limit: LIMIT }), false);
  assert.equal(mayQueueReplay(1, { queued: 1, limit: Infinity }), true, "no limit: no pacing");
});

Deno.test("a replay sends its publications in order, then asks to read on from where it reached", () => {
  const pacer = new ReplayPacer();
  pacer.add("a", { since: { epoch: EPOCH, offset: 2 }, pubs: pubs("a", 3, 5) });
  const step = pacer.next(EMPTY);
  assert.deepStrictEqual(step, {
    kind: "send",
    channel: "a",
    offset: 3,
    text: encodePublication(pubs("a", 3, 3)[0]),
  });
  const { sent, stop } = sendAll(pacer);
  assert.deepStrictEqual(sent, ["a:4", "a:5"]);
  assert.deepStrictEqual(stop, { kind: "read", channel: "a", since: { epoch: EPOCH, offset: 5 } });
  assert.equal(pacer.extend("a", pubs("a", 6, 6)), false, "more arrived meanwhile");
  assert.deepStrictEqual(sendAll(pacer).sent, ["a:6"]);
  assert.equal(pacer.extend("a", []), true, "nothing more: caught up");
  assert.deepStrictEqual(pacer.next(EMPTY), { kind: "idle" });
  assert.equal(pacer.idle, true);
});

Deno.test("a replay waits while the queue holds its share, and goes on as it drains", () => {
  const data = JSON.stringify("y".repeat(90));
  const frame = textFrameLength(encodePublication(pubs("a", 1, 1, data)[0]));
  const pacer = new ReplayPacer();
  pacer.add("a", { since: { epoch: EPOCH, offset: 0 }, pubs: pubs("a", 1, 20, data) });
  // A simulated queue: what the pacer sends is queued until the test drains it.
  let queued = 0;
  const rounds: number[] = [];
  for (let round = 0; round < 100; round++) {
    let sent = 0;
    let step = pacer.next({ queued, limit: LIMIT });
    for (; step.kind === "send"; step = pacer.next({ queued, limit: LIMIT })) {
      queued += textFrameLength(step.text);
      sent++;
    }
    assert.ok(queued <= LIMIT * REPLAY_QUEUE_SHARE, `round ${round}: ${queued} bytes queued`);
    rounds.push(sent);
    if (step.kind === "read") break;
    assert.equal(step.kind, "wait");
    queued = 0; // The queue drained.
  }
  const perRound = Math.floor((LIMIT * REPLAY_QUEUE_SHARE) / frame);
  assert.ok(perRound > 1 && perRound < 20, `${perRound} frames per round`);
  assert.equal(rounds.reduce((a, b) => a + b, 0), 20, "every publication, once");
  assert.deepStrictEqual(rounds.slice(0, -1), rounds.slice(0, -1).map(() => perRound));
});

Deno.test("a frame larger than the replay's share still goes into an empty queue", () => {
  const big = JSON.stringify("z".repeat(LIMIT));
  const pacer = new ReplayPacer();
  pacer.add("a", { since: { epoch: EPOCH, offset: 0 }, pubs: pubs("a", 1, 2, big) });
  assert.equal(pacer.next(EMPTY).kind, "send");
  assert.equal(pacer.next({ queued: 1, limit: LIMIT }).kind, "wait");
  assert.equal(pacer.next(EMPTY).kind, "send");
});

Deno.test("replays of several channels run one after another, in the order they were asked for", () => {
  const pacer = new ReplayPacer();
  pacer.add("a", { since: { epoch: EPOCH, offset: 0 }, pubs: pubs("a", 1, 2) });
  pacer.add("b", { since: { epoch: EPOCH, offset: 4 }, pubs: pubs("b", 5, 5) });
  assert.equal(pacer.has("b"), true);
  assert.deepStrictEqual(sendAll(pacer).sent, ["a:1", "a:2"]);
  assert.equal(pacer.extend("a", []), true);
  const { sent, stop } = sendAll(pacer);
  assert.deepStrictEqual(sent, ["b:5"]);
  assert.deepStrictEqual(stop, { kind: "read", channel: "b", since: { epoch: EPOCH, offset: 5 } });
});

Deno.test("a cancelled replay sends nothing more; the next one goes on", () => {
  const pacer = new ReplayPacer();
  pacer.add("a", { since: { epoch: EPOCH, offset: 0 }, pubs: pubs("a", 1, 3) });
  pacer.add("b", { since: { epoch: EPOCH, offset: 0 }, pubs: pubs("b", 1, 1) });
  assert.equal(pacer.next(EMPTY).kind, "send");
  assert.equal(pacer.cancel("a"), true);
  assert.equal(pacer.cancel("a"), false);
  assert.equal(pacer.has("a"), false);
  assert.deepStrictEqual(sendAll(pacer).sent, ["b:1"]);
});

Deno.test("extend refuses what would leave a gap or was not asked for (our own bug)", () => {
  const pacer = new ReplayPacer();
  pacer.add("a", { since: { epoch: EPOCH, offset: 0 }, pubs: pubs("a", 1, 1) });
  assert.throws(() => pacer.extend("a", pubs("a", 2, 2)), /no read was asked/);
  sendAll(pacer);
  assert.throws(() => pacer.extend("b", []), /no read was asked/);
  assert.throws(() => pacer.extend("a", pubs("a", 3, 3)), /offset 2 missing/);
  assert.throws(
    () => pacer.add("a", { since: { epoch: EPOCH, offset: 0 }, pubs: [] }),
    /is running/,
  );
});

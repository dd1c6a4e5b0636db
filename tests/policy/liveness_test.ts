// Tests the deadlines of one connection (lib/policy/liveness.ts) with a fake clock: no waits.

import assert from "node:assert/strict";
import { Liveness, type LivenessOptions } from "../../lib/policy/liveness.ts";

const OPTIONS: LivenessOptions = {
  handshakeTimeout: 1000,
  pingInterval: 500,
  pongTimeout: 200,
  closeTimeout: 300,
  drainTimeout: 400,
};

Deno.test("an unfinished opening handshake times out at handshakeTimeout (RFC 6455 §4.1)", () => {
  const l = new Liveness(OPTIONS, 0);
  assert.equal(l.tick(999, false), "none");
  assert.equal(l.tick(1000, false), "handshake-timeout");
});

Deno.test("a silent peer is pinged after pingInterval, and dropped after pongTimeout (RFC 6455 §5.5.2)", () => {
  const l = new Liveness(OPTIONS, 0);
  l.opened(100);
  assert.equal(l.tick(599, false), "none");
  assert.equal(l.tick(600, false), "ping");
  assert.equal(l.tick(799, false), "none");
  assert.equal(l.tick(800, false), "pong-timeout");
});

Deno.test("any traffic answers a ping and restarts the interval (RFC 6455 §5.5.3)", () => {
  const l = new Liveness(OPTIONS, 0);
  l.opened(0);
  assert.equal(l.tick(500, false), "ping");
  l.heard();
  assert.equal(l.tick(650, false), "none", "heard at 650");
  assert.equal(l.tick(1149, false), "none");
  assert.equal(l.tick(1150, false), "ping");
});

Deno.test("the closing handshake is bounded by closeTimeout (RFC 6455 §7.1.1)", () => {
  const l = new Liveness(OPTIONS, 0);
  l.opened(0);
  l.closing(100);
  l.closing(250); // Only the first call starts the deadline.
  assert.equal(l.tick(399, false), "none");
  assert.equal(l.tick(400, false), "close-timeout");
});

Deno.test("a queue that stays unwritten for drainTimeout makes a slow consumer", () => {
  const l = new Liveness({ ...OPTIONS, pingInterval: 10_000 }, 0);
  l.opened(0);
  assert.equal(l.tick(100, true), "none");
  l.wrote();
  assert.equal(l.tick(300, true), "none", "progress at 300");
  assert.equal(l.tick(699, true), "none");
  assert.equal(l.tick(700, true), "slow-consumer");
});

Deno.test("an empty queue is never a slow consumer", () => {
  const l = new Liveness({ ...OPTIONS, pingInterval: 10_000 }, 0);
  l.opened(0);
  assert.equal(l.tick(100, true), "none");
  assert.equal(l.tick(450, false), "none");
  assert.equal(l.tick(5000, false), "none");
});

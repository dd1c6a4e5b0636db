// Tests the pure limit modules (lib/policy/token_bucket.ts, message_rate.ts,
// connection_limits.ts) with a fake clock: every `now` is a number the test chooses.

import assert from "node:assert/strict";
import { TokenBucket } from "../lib/policy/token_bucket.ts";
import { messageRateFor, RATE_LIMITED_CLOSE } from "../lib/policy/message_rate.ts";
import { ConnectionLimits } from "../lib/policy/connection_limits.ts";
import { PushCloseCode } from "../lib/protocol/close_codes.ts";

Deno.test("token bucket allows its burst at once, then one token per 1/rate seconds", () => {
  const bucket = new TokenBucket({ perSecond: 10, burst: 3 }, 0);
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [
    true,
    true,
    true,
    false,
  ]);
  assert.equal(bucket.take(99), false, "0.99 tokens after 99 ms is not a whole token");
  assert.equal(bucket.take(100), true, "one token after 100 ms at 10/s");
  assert.equal(bucket.take(100), false);
});

Deno.test("token bucket never holds more than its burst after a long idle spell", () => {
  const bucket = new TokenBucket({ perSecond: 1000, burst: 2 }, 0);
  bucket.take(0);
  bucket.take(0);
  const later = 3_600_000;
  assert.equal(bucket.take(later), true);
  assert.equal(bucket.take(later), true);
  assert.equal(bucket.take(later), false);
});

Deno.test("token bucket ignores a clock that steps back", () => {
  const bucket = new TokenBucket({ perSecond: 1, burst: 1 }, 1000);
  assert.equal(bucket.take(1000), true);
  assert.equal(bucket.take(500), false);
  assert.equal(bucket.take(1999), false);
  assert.equal(bucket.take(2000), true);
});

Deno.test("token bucket refuses a rate or burst that is not positive", () => {
  assert.throws(() => new TokenBucket({ perSecond: 0, burst: 1 }, 0), RangeError);
  assert.throws(() => new TokenBucket({ perSecond: 1, burst: 0 }, 0), RangeError);
});

Deno.test("message rate: off by default, so unlimited connections get no bucket", () => {
  assert.equal(messageRateFor({}, 0), null);
  assert.equal(messageRateFor({ messageRate: 0 }, 0), null);
});

Deno.test("message rate: past rate + burst, the verdict is close with 4001 RATE_LIMITED", () => {
  const rate = messageRateFor({ messageRate: 5, messageBurst: 2 }, 0);
  assert.ok(rate);
  assert.equal(rate.message(0), "accept");
  assert.equal(rate.message(0), "accept");
  assert.equal(rate.message(0), "close");
  assert.equal(rate.message(200), "accept", "one message per 200 ms at 5/s");
  assert.equal(RATE_LIMITED_CLOSE.code, PushCloseCode.RATE_LIMITED);
  assert.equal(RATE_LIMITED_CLOSE.code, 4001);
  assert.equal(RATE_LIMITED_CLOSE.reason, "message rate exceeded");
});

Deno.test("message rate: the burst defaults to one second's worth of the rate", () => {
  const rate = messageRateFor({ messageRate: 3 }, 0)!;
  assert.deepEqual([0, 0, 0, 0].map((t) => rate.message(t)), [
    "accept",
    "accept",
    "accept",
    "close",
  ]);
});

Deno.test("max connections: the (N+1)th is refused with 503 until one is released", () => {
  const limits = new ConnectionLimits({ maxConnections: 2 });
  assert.equal(limits.admit("10.0.0.1", 0).ok, true);
  assert.equal(limits.admit("10.0.0.2", 0).ok, true);
  const third = limits.admit("10.0.0.3", 0);
  assert.equal(third.ok, false);
  assert.ok(!third.ok && third.status === 503 && third.reason === "max_connections");
  limits.release("10.0.0.1");
  assert.equal(limits.admit("10.0.0.3", 0).ok, true);
  assert.equal(limits.open, 2);
});

Deno.test("per-IP cap: an address over its cap gets 429 while another address is served", () => {
  const limits = new ConnectionLimits({ maxConnectionsPerIp: 2 });
  assert.equal(limits.admit("10.0.0.1", 0).ok, true);
  assert.equal(limits.admit("10.0.0.1", 0).ok, true);
  const over = limits.admit("10.0.0.1", 0);
  assert.ok(!over.ok && over.status === 429 && over.reason === "per_ip_connections");
  assert.equal(limits.admit("10.0.0.2", 0).ok, true);
  limits.release("10.0.0.1");
  assert.equal(limits.admit("10.0.0.1", 0).ok, true);
});

Deno.test("per-IP handshake rate: a burst is refused with 429 and allowed again after refill", () => {
  const limits = new ConnectionLimits({ handshakeRatePerIp: 2 });
  assert.equal(limits.admit("a", 0).ok, true);
  assert.equal(limits.admit("a", 0).ok, true);
  const third = limits.admit("a", 0);
  assert.ok(!third.ok && third.status === 429 && third.reason === "per_ip_handshake_rate");
  assert.equal(limits.admit("b", 0).ok, true, "another address has its own bucket");
  assert.equal(limits.admit("a", 500).ok, true, "one handshake per 500 ms at 2/s");
});

Deno.test("no limits configured: every handshake is admitted and no address is tracked", () => {
  const limits = new ConnectionLimits({});
  for (let i = 0; i < 10_000; i++) assert.equal(limits.admit("127.0.0.1", 0).ok, true);
  assert.equal(limits.addresses, 0);
  assert.equal(limits.open, 10_000);
});

Deno.test("sweep forgets idle addresses and keeps those with open connections", () => {
  const limits = new ConnectionLimits({ maxConnectionsPerIp: 5, handshakeRatePerIp: 1 });
  limits.admit("idle", 0);
  limits.release("idle");
  limits.admit("busy", 0);
  limits.sweep(500);
  assert.equal(limits.addresses, 2, "idle's bucket is not yet full at 500 ms");
  limits.sweep(1000);
  assert.equal(limits.addresses, 1);
  assert.equal(limits.admit("busy", 1000).ok, true);
});

Deno.test("release without an admitted connection is a bug and throws", () => {
  assert.throws(() => new ConnectionLimits({}).release("x"), /none is admitted/);
});

// lib/policy/log_limiter.ts with a fake clock: how many lines of each kind pass per window,
// and the summary that counts the rest once their window ends.

import assert from "node:assert/strict";
import { LogLimiter } from "../lib/policy/log_limiter.ts";

const WINDOW_MS = 10_000;
const ORIGIN = "Origin refusals";
const HANDSHAKE = "handshake errors";

/** Admits `count` lines of `kind` at `nowMs` and returns how many were let through. */
function burst(limiter: LogLimiter, options: { kind: string; count: number; nowMs: number }) {
  let logged = 0;
  for (let i = 0; i < options.count; i++) {
    const { log, summary } = limiter.admit(options.kind, options.nowMs);
    assert.equal(summary, null, "no summary inside a window");
    if (log) logged++;
  }
  return logged;
}

Deno.test("the first perWindow lines of a kind in a window are logged and the rest suppressed", () => {
  const limiter = new LogLimiter({ perWindow: 3, windowMs: WINDOW_MS });
  assert.equal(burst(limiter, { kind: ORIGIN, count: 40, nowMs: 0 }), 3);
  assert.equal(burst(limiter, { kind: ORIGIN, count: 5, nowMs: WINDOW_MS - 1 }), 0);
});

Deno.test("each kind has its own allowance: a flood of one does not hide another", () => {
  const limiter = new LogLimiter({ perWindow: 2, windowMs: WINDOW_MS });
  assert.equal(burst(limiter, { kind: ORIGIN, count: 100, nowMs: 0 }), 2);
  assert.equal(burst(limiter, { kind: HANDSHAKE, count: 3, nowMs: 1 }), 2);
});

Deno.test("the first line after a window ends carries its summary and starts a new allowance", () => {
  const limiter = new LogLimiter({ perWindow: 3, windowMs: WINDOW_MS });
  burst(limiter, { kind: ORIGIN, count: 40, nowMs: 500 });
  const next = limiter.admit(ORIGIN, 500 + WINDOW_MS);
  assert.deepEqual(next, {
    log: true,
    summary: "37 more Origin refusals suppressed in the last 10 s",
  });
  // The new window counts from here, and the old count is not repeated.
  assert.equal(burst(limiter, { kind: ORIGIN, count: 2, nowMs: 500 + WINDOW_MS }), 2);
  assert.equal(limiter.admit(ORIGIN, 500 + WINDOW_MS).log, false);
});

Deno.test("a window that suppressed nothing ends without a summary", () => {
  const limiter = new LogLimiter({ perWindow: 3, windowMs: WINDOW_MS });
  burst(limiter, { kind: ORIGIN, count: 3, nowMs: 0 });
  assert.deepEqual(limiter.admit(ORIGIN, WINDOW_MS), { log: true, summary: null });
  assert.deepEqual(limiter.flush(3 * WINDOW_MS), []);
});

Deno.test("flush() summarises only ended windows, once each, in first-seen order", () => {
  const limiter = new LogLimiter({ perWindow: 1, windowMs: WINDOW_MS });
  burst(limiter, { kind: HANDSHAKE, count: 5, nowMs: 0 });
  burst(limiter, { kind: ORIGIN, count: 3, nowMs: 2_000 });
  assert.deepEqual(limiter.flush(WINDOW_MS - 1), []);
  assert.deepEqual(limiter.flush(WINDOW_MS + 200), [
    "4 more handshake errors suppressed in the last 10 s",
  ]);
  assert.deepEqual(limiter.flush(WINDOW_MS + 2_000), [
    "2 more Origin refusals suppressed in the last 10 s",
  ]);
  assert.deepEqual(limiter.flush(5 * WINDOW_MS), []);
  // After a flush the kind starts afresh.
  assert.equal(limiter.admit(HANDSHAKE, 5 * WINDOW_MS).log, true);
});

Deno.test("a summary given late says how long its count covers", () => {
  const limiter = new LogLimiter({ perWindow: 1, windowMs: WINDOW_MS });
  burst(limiter, { kind: ORIGIN, count: 8, nowMs: 0 });
  assert.equal(
    limiter.admit(ORIGIN, 300_000).summary,
    "7 more Origin refusals suppressed in the last 300 s",
  );
});

Deno.test("drain() ends every open window early with its summary", () => {
  const limiter = new LogLimiter({ perWindow: 0, windowMs: WINDOW_MS });
  assert.equal(burst(limiter, { kind: ORIGIN, count: 2, nowMs: 0 }), 0);
  assert.deepEqual(limiter.drain(400), ["2 more Origin refusals suppressed in the last 1 s"]);
  assert.deepEqual(limiter.drain(500), []);
});

Deno.test("options outside their range are API misuse and throw RangeError", () => {
  assert.throws(() => new LogLimiter({ perWindow: -1, windowMs: WINDOW_MS }), RangeError);
  assert.throws(() => new LogLimiter({ perWindow: 1.5, windowMs: WINDOW_MS }), RangeError);
  assert.throws(() => new LogLimiter({ perWindow: 1, windowMs: 0 }), RangeError);
  assert.throws(() => new LogLimiter({ perWindow: 1, windowMs: Number.NaN }), RangeError);
});

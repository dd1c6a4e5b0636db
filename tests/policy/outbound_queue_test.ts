// Tests the frame-aware outbound queue (lib/policy/outbound_queue.ts): entries are whole frames,
// a write unit is whole entries, dropping never cuts a frame, shared bytes are counted once.

import assert from "node:assert/strict";
import { COALESCE_LIMIT, OutboundQueue, SharedBytes } from "../../lib/policy/outbound_queue.ts";
import { encodeFrame, MERGE_LIMIT, Opcode, parseFrameHeader } from "../../lib/protocol/frame.ts";

function frameOf(size: number, fill: number): Uint8Array[] {
  return encodeFrame(Opcode.BINARY, new Uint8Array(size).fill(fill));
}

function sizeOf(parts: readonly Uint8Array[]): number {
  return parts.reduce((n, p) => n + p.length, 0);
}

/** Parses a byte stream into frames; throws if it does not end on a frame boundary. */
function frames(stream: Uint8Array): number[] {
  const sizes: number[] = [];
  let at = 0;
  while (at < stream.length) {
    const h = parseFrameHeader(stream.subarray(at));
    if (typeof h === "symbol" || "error" in h) throw new Error(`no frame header at ${at}`);
    at += h.headerLength + h.payloadLength;
    if (at > stream.length) throw new Error("the stream ends inside a frame");
    sizes.push(h.payloadLength);
  }
  return sizes;
}

Deno.test("a frame whose payload is queued apart from its header is written whole, even when the rest is dropped (RFC 6455 §5.2)", () => {
  for (let payload = MERGE_LIMIT - 2; payload <= MERGE_LIMIT + 14; payload++) {
    const q = new OutboundQueue();
    const written: Uint8Array[] = [];
    q.push(frameOf(10, 1), 12);
    const big = frameOf(payload, 2);
    q.push(big, sizeOf(big));
    q.push(frameOf(10, 3), 12);
    const unit = q.take()!;
    written.push(...unit);
    // The connection is closed as a slow consumer while this unit is in flight.
    q.dropPending();
    q.written();
    let more = q.take();
    while (more) {
      written.push(...more);
      q.written();
      more = q.take();
    }
    const stream = new Uint8Array(sizeOf(written));
    let at = 0;
    for (const w of written) {
      stream.set(w, at);
      at += w.length;
    }
    const sizes = frames(stream);
    assert.ok(sizes.every((s) => s === 10 || s === payload), `payload ${payload}: ${sizes}`);
  }
});

Deno.test("small entries are coalesced into one write up to COALESCE_LIMIT; a large one goes alone", () => {
  const q = new OutboundQueue();
  for (let i = 0; i < 4; i++) q.push([new Uint8Array(100)], 100);
  const big = [new Uint8Array(4), new Uint8Array(COALESCE_LIMIT)];
  q.push(big, COALESCE_LIMIT + 4);
  const first = q.take()!;
  assert.equal(first.length, 1);
  assert.equal(first[0].length, 400);
  q.written();
  const second = q.take()!;
  assert.equal(second, big, "the large entry's parts, not a copy");
  q.written();
  assert.equal(q.take(), null);
  assert.equal(q.size, 0);
});

Deno.test("size counts what is queued and in flight until written()", () => {
  const q = new OutboundQueue();
  q.push([new Uint8Array(10)], 10);
  q.push([new Uint8Array(20)], 20);
  assert.equal(q.size, 30);
  q.take();
  assert.equal(q.size, 30);
  q.written();
  assert.equal(q.size, 0);
});

Deno.test("shared bytes are released once every queue has written or dropped them", () => {
  let freed = 0;
  const shared = new SharedBytes([new Uint8Array(50)], (n) => freed += n);
  const a = new OutboundQueue();
  const b = new OutboundQueue();
  a.pushShared(shared);
  b.pushShared(shared);
  assert.equal(a.privateSize, 0);
  assert.equal(a.size, 50);
  a.take();
  a.written();
  assert.equal(freed, 0);
  b.dropPending();
  assert.equal(freed, 50);
});

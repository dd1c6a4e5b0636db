// Tests the codec with permessage-deflate negotiated (RFC 7692 §6, §7.2): compressed messages
// in, the RSV1 rules, the inflated-size bound across fragments, compressed messages out, and
// broadcast frames made once per form (lib/protocol/compressed_frames.ts BroadcastFrames).

import assert from "node:assert/strict";
import { Codec, type CodecEvent } from "../lib/protocol/codec.ts";
import { CloseCode } from "../lib/protocol/close_codes.ts";
import { BroadcastFrames } from "../lib/protocol/compressed_frames.ts";
import { compressMessage, inflateMessage, inflateText } from "../lib/protocol/deflate.ts";
import {
  applyMask,
  encodeFrameHeader,
  type FrameHeader,
  Opcode,
  parseFrameHeader,
} from "../lib/protocol/frame.ts";
import { negotiateDeflate } from "../lib/protocol/permessage_deflate.ts";
import { concat, feedings } from "./support/feed.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const DEFLATE = negotiateDeflate("permessage-deflate; client_max_window_bits");
/** RSV1 as FrameHeader.rsv holds it. */
const RSV1 = 4;
const MIB = 1 << 20;

/** A masked client frame. */
function frame(opcode: number, payload: Uint8Array, opts: { fin?: boolean; rsv1?: boolean } = {}) {
  const header = encodeFrameHeader(opcode, payload.length, { mask: MASK, ...opts });
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  applyMask(out.subarray(header.length), MASK);
  return out;
}

function run(
  chunks: Uint8Array[],
  { maxMessageSize = 16 * MIB, deflate = DEFLATE } = {},
): CodecEvent[] {
  const codec = new Codec({ deflate, maxMessageSize });
  for (const c of chunks) codec.receive(c);
  return codec.takeEvents();
}

/** Each event as its type, or for a failure as [kind, code]. */
function summary(events: CodecEvent[]): unknown[] {
  return events.map((e) => e.type === "fail" ? [e.kind, e.code] : e.type);
}

function header(bytes: Uint8Array): FrameHeader {
  const h = parseFrameHeader(bytes);
  assert.ok(typeof h === "object" && !("error" in h));
  return h;
}

/** The frames in `bytes`, in order, with their payloads. */
function frames(bytes: Uint8Array): { h: FrameHeader; payload: Uint8Array }[] {
  const out = [];
  let at = 0;
  while (at < bytes.length) {
    const h = header(bytes.subarray(at));
    const start = at + h.headerLength;
    out.push({ h, payload: bytes.subarray(start, start + h.payloadLength) });
    at = start + h.payloadLength;
  }
  return out;
}

const text = (n: number) => '{"k":"valué"}'.repeat(Math.ceil(n / 14)).slice(0, n);
const utf8 = (s: string) => new TextEncoder().encode(s);

Deno.test("a compressed text message (RSV1) is inflated, fed every way (RFC 7692 §6.2)", () => {
  const input = frame(Opcode.TEXT, compressMessage(utf8(text(300))), { rsv1: true });
  for (const f of feedings(input)) {
    assert.deepEqual(run(f.chunks), [{ type: "text", data: text(300) }], f.name);
  }
});

Deno.test("a compressed binary message is inflated (RFC 7692 §6.2)", () => {
  const data = utf8(text(2000));
  const events = run([frame(Opcode.BINARY, compressMessage(data), { rsv1: true })]);
  assert.deepEqual(events, [{ type: "binary", data }]);
});

Deno.test("a fragmented compressed message: RSV1 on the first frame only, inflated at FIN, a ping between (RFC 7692 §6.1)", () => {
  const c = compressMessage(utf8(text(5000)));
  const third = Math.floor(c.length / 3);
  const input = concat([
    frame(Opcode.TEXT, c.subarray(0, third), { fin: false, rsv1: true }),
    frame(Opcode.PING, new Uint8Array(0)),
    frame(Opcode.CONTINUATION, c.subarray(third, 2 * third), { fin: false }),
    frame(Opcode.CONTINUATION, c.subarray(2 * third)),
  ]);
  for (const f of feedings(input)) {
    const events = run(f.chunks);
    assert.deepEqual(events.map((e) => e.type), ["ping", "text"], f.name);
    assert.equal((events[1] as { data: string }).data, text(5000), f.name);
  }
});

Deno.test("an empty compressed message (one 00 byte, or none) is the empty text (RFC 7692 §7.2.3.6)", () => {
  assert.deepEqual(run([frame(Opcode.TEXT, new Uint8Array([0]), { rsv1: true })]), [
    { type: "text", data: "" },
  ]);
  assert.deepEqual(run([frame(Opcode.TEXT, new Uint8Array(0), { rsv1: true })]), [
    { type: "text", data: "" },
  ]);
});

Deno.test("an uncompressed message on a deflate connection is read as before (RFC 7692 §6)", () => {
  assert.deepEqual(run([frame(Opcode.TEXT, utf8("plain"))]), [{ type: "text", data: "plain" }]);
});

Deno.test("RSV1 without the extension negotiated fails with 1002 reserved-bits (RFC 6455 §5.2)", () => {
  const events = run([frame(Opcode.TEXT, compressMessage(utf8("x")), { rsv1: true })], {
    deflate: null,
  });
  assert.deepEqual(summary(events), [["reserved-bits", CloseCode.PROTOCOL_ERROR]]);
});

Deno.test("RSV2 and RSV3 fail with 1002 even with permessage-deflate (RFC 7692 §6: it uses RSV1 only)", () => {
  for (const rsv of [2, 1, 6]) {
    const bytes = frame(Opcode.TEXT, utf8("x"));
    bytes[0] = (bytes[0] & 0x8f) | (rsv << 4);
    assert.deepEqual(summary(run([bytes])), [["reserved-bits", CloseCode.PROTOCOL_ERROR]]);
  }
});

Deno.test("RSV1 on a continuation frame fails with 1002 (RFC 7692 §6.1)", () => {
  const c = compressMessage(utf8(text(100)));
  const events = run([
    frame(Opcode.TEXT, c.subarray(0, 10), { fin: false, rsv1: true }),
    frame(Opcode.CONTINUATION, c.subarray(10), { rsv1: true }),
  ]);
  assert.deepEqual(summary(events), [["reserved-bits", CloseCode.PROTOCOL_ERROR]]);
});

Deno.test("RSV1 on a control frame fails with 1002 (RFC 7692 §6.1)", () => {
  for (const opcode of [Opcode.PING, Opcode.PONG, Opcode.CLOSE]) {
    const events = run([frame(opcode, new Uint8Array(0), { rsv1: true })]);
    assert.deepEqual(
      summary(events),
      [["reserved-bits", CloseCode.PROTOCOL_ERROR]],
      `opcode ${opcode}`,
    );
  }
});

Deno.test("a zip bomb fails with 1009 once its inflated size passes the limit, across fragments (RFC 7692 §8.1)", () => {
  const bomb = compressMessage(new Uint8Array(100 * MIB), { level: 9 });
  const half = bomb.length >> 1;
  const events = run([
    frame(Opcode.BINARY, bomb.subarray(0, half), { fin: false, rsv1: true }),
    frame(Opcode.CONTINUATION, bomb.subarray(half)),
  ], { maxMessageSize: MIB });
  assert.deepEqual(summary(events), [["message-too-big", CloseCode.MESSAGE_TOO_BIG]]);
});

Deno.test("a compressed message that inflates to exactly the limit is accepted (RFC 7692 §8.1)", () => {
  const data = new Uint8Array(MIB).fill(97);
  const events = run([frame(Opcode.TEXT, compressMessage(data), { rsv1: true })], {
    maxMessageSize: MIB,
  });
  assert.equal(events.length, 1);
  assert.equal((events[0] as { data: string }).data.length, MIB);
});

Deno.test("compressed bytes over the limit fail with 1009 from the header, before buffering (RFC 6455 §10.4)", () => {
  const h = encodeFrameHeader(Opcode.BINARY, 3 * MIB, { mask: MASK, rsv1: true });
  assert.deepEqual(summary(run([h], { maxMessageSize: MIB })), [[
    "message-too-big",
    CloseCode.MESSAGE_TOO_BIG,
  ]]);
});

Deno.test("inflated text that is not UTF-8 fails with 1007 (RFC 6455 §8.1)", () => {
  const events = run([
    frame(Opcode.TEXT, compressMessage(new Uint8Array([0xc3, 0x28])), { rsv1: true }),
  ]);
  assert.deepEqual(summary(events), [["invalid-utf8", CloseCode.INVALID_PAYLOAD_DATA]]);
});

Deno.test("compressed data that does not inflate fails with 1007 (RFC 7692 §7.2.2)", () => {
  const events = run([
    frame(Opcode.TEXT, new Uint8Array([0xff, 0xff, 0xff, 0xff]), { rsv1: true }),
  ]);
  assert.deepEqual(summary(events), [["invalid-compressed-data", CloseCode.INVALID_PAYLOAD_DATA]]);
});

Deno.test("sendText compresses at or over the threshold and sends plain below it (RFC 7692 §6)", () => {
  const counter = { compressions: 0 };
  const codec = new Codec({
    deflate: DEFLATE,
    compression: { threshold: 100 },
    compressionCounter: counter,
  });
  codec.sendText("a".repeat(99));
  codec.sendText(text(4000));
  const [first, second] = frames(concat(codec.takeOutput()));
  assert.equal(first.h.rsv, 0);
  assert.equal(second.h.rsv, RSV1);
  assert.ok(second.payload.length < 4000);
  assert.deepEqual(inflateText(second.payload, { maxMessageSize: MIB }), {
    ok: true,
    text: text(4000),
  });
  assert.equal(counter.compressions, 1);
});

Deno.test("a message deflate does not shrink goes out plain, RSV1 clear (RFC 7692 §6)", () => {
  const noise = crypto.getRandomValues(new Uint8Array(4096));
  const codec = new Codec({ deflate: DEFLATE, compression: { threshold: 0 } });
  codec.sendBinary(noise);
  const [only] = frames(concat(codec.takeOutput()));
  assert.equal(only.h.rsv, 0);
  assert.deepEqual(only.payload, noise);
});

Deno.test("sendBinary compresses for a deflate connection; without one, nothing is compressed (RFC 7692 §5)", () => {
  const data = utf8(text(3000));
  const withDeflate = new Codec({ deflate: DEFLATE });
  withDeflate.sendBinary(data);
  const [c] = frames(concat(withDeflate.takeOutput()));
  assert.equal(c.h.rsv, RSV1);
  assert.deepEqual(inflateMessage(c.payload, { maxMessageSize: MIB }), { ok: true, data });
  const plain = new Codec();
  plain.sendText(text(3000));
  assert.equal(frames(concat(plain.takeOutput()))[0].h.rsv, 0);
});

Deno.test("control frames are never compressed (RFC 7692 §6.1)", () => {
  const codec = new Codec({ deflate: DEFLATE, compression: { threshold: 0 } });
  codec.sendPing(utf8("p".repeat(100)));
  codec.close(CloseCode.NORMAL_CLOSURE, "r".repeat(100));
  for (const f of frames(concat(codec.takeOutput()))) assert.equal(f.h.rsv, 0);
});

Deno.test("compressed pre-encoded frames are refused by a codec without permessage-deflate (RFC 7692 §6)", () => {
  const codec = new Codec({ sink: { frames: () => true } });
  assert.throws(
    () => codec.sendEncoded({ parts: [new Uint8Array(2)], compressed: true }),
    TypeError,
  );
});

Deno.test("a broadcast batch compresses each line once and frames each form once (RFC 7692 §7.1.1.1)", () => {
  const lines = [text(2000), "short", text(3000)];
  const b = new BroadcastFrames(lines, { joinLimit: MIB });
  const plain = b.plain();
  assert.equal(plain.length, 1);
  assert.equal(b.plain(), plain);
  const compressed = b.compressed(15)!;
  assert.equal(b.compressed(15), compressed);
  assert.equal(b.compressions, 2);
  const got = frames(compressed[0]);
  assert.deepEqual(got.map((f) => f.h.rsv), [RSV1, 0, RSV1]);
  assert.deepEqual(
    got.map((f) => {
      if (f.h.rsv === 0) return new TextDecoder().decode(f.payload);
      const r = inflateText(f.payload, { maxMessageSize: MIB });
      return r.ok ? r.text : r.reason;
    }),
    lines,
  );
  assert.deepEqual(
    frames(plain[0]).map((f) => new TextDecoder().decode(f.payload)),
    lines,
  );
});

Deno.test("a broadcast of messages under the threshold has no compressed form: everyone gets the plain one", () => {
  const b = new BroadcastFrames(["a", "b"], { joinLimit: MIB });
  assert.equal(b.compressed(15), null);
  assert.equal(b.compressions, 0);
});

// Tests the RFC 6455 §5.2 base frame (lib/protocol/frame.ts): header parsing and encoding, and masking.

import assert from "node:assert/strict";
import fc from "fast-check";
import { checkProperty } from "./support/property.ts";
import {
  applyMask,
  encodeFrame,
  encodeFrameHeader,
  type FrameHeader,
  MAX_FRAME_HEADER,
  MERGE_LIMIT,
  NEED_DATA,
  Opcode,
  parseFrameHeader,
} from "../lib/protocol/frame.ts";
import { assertSame, concat } from "./support/feed.ts";

const MASK = new Uint8Array([0xa1, 0x02, 0xff, 0x7c]);

/** Bytes before a header that `at` must skip (they look like a header of their own). */
const LEADING = new Uint8Array([0x82, 0xff, 0x80]);

/**
 * Parses `header` and checks that every strict prefix of it asks for more data, read from the
 * start of a view and from `at` in a longer array alike.
 */
function parseWhole(header: Uint8Array): ReturnType<typeof parseFrameHeader> {
  const at = LEADING.length;
  for (let i = 0; i < header.length; i++) {
    assert.equal(parseFrameHeader(header.subarray(0, i)), NEED_DATA, `prefix of ${i} bytes`);
    const inPlace = concat([LEADING, header.subarray(0, i)]);
    assert.equal(parseFrameHeader(inPlace, { at }), NEED_DATA, `prefix of ${i} bytes at ${at}`);
  }
  const result = parseFrameHeader(header);
  // Trailing data (the payload) does not change the header.
  assertSame(parseFrameHeader(concat([header, new Uint8Array([1, 2, 3])])), result);
  assertSame(parseFrameHeader(concat([LEADING, header, new Uint8Array([1])]), { at }), result);
  const maskInto = new Uint8Array(4);
  const into = parseFrameHeader(concat([LEADING, header]), { at, maskInto });
  assertSame(into, result, "with maskInto");
  if (into !== NEED_DATA && !("error" in into) && into.mask) assert.equal(into.mask, maskInto);
  return result;
}

function header(result: ReturnType<typeof parseFrameHeader>): FrameHeader {
  assert.ok(result !== NEED_DATA && !("error" in result), `not a header: ${String(result)}`);
  return result;
}

Deno.test("7-bit length: 2-byte header, NEED_DATA at every prefix (RFC 6455 §5.2)", () => {
  const h = header(parseWhole(new Uint8Array([0x81, 0x05])));
  assertSame(h, {
    fin: true,
    rsv: 0,
    opcode: Opcode.TEXT,
    mask: null,
    payloadLength: 5,
    headerLength: 2,
  });
});

Deno.test("7-bit length 125 with a mask: 6-byte header (RFC 6455 §5.2)", () => {
  const h = header(parseWhole(new Uint8Array([0x02, 0xfd, ...MASK])));
  assert.equal(h.fin, false);
  assert.equal(h.opcode, Opcode.BINARY);
  assert.equal(h.payloadLength, 125);
  assertSame(h.mask, MASK);
  assert.equal(h.headerLength, 6);
});

Deno.test("16-bit length is big-endian after 126 (RFC 6455 §5.2)", () => {
  const h = header(parseWhole(new Uint8Array([0x82, 0xfe, 0x12, 0x34, ...MASK])));
  assert.equal(h.payloadLength, 0x1234);
  assert.equal(h.headerLength, 8);
  assert.equal(header(parseWhole(new Uint8Array([0x82, 0x7e, 0xff, 0xff]))).payloadLength, 65535);
});

Deno.test("64-bit length is big-endian after 127 (RFC 6455 §5.2)", () => {
  const bytes = new Uint8Array([0x82, 0xff, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MASK]);
  const h = header(parseWhole(bytes));
  assert.equal(h.payloadLength, Number.MAX_SAFE_INTEGER);
  assert.equal(h.headerLength, MAX_FRAME_HEADER);
  const small = header(parseWhole(new Uint8Array([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])));
  assert.equal(small.payloadLength, 65536);
});

Deno.test("64-bit length with the most significant bit set is an error (RFC 6455 §5.2)", () => {
  const result = parseWhole(new Uint8Array([0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]));
  assert.ok(result !== NEED_DATA && "error" in result);
  assert.equal(result.tooLarge, false, "a malformed header, not a size problem");
});

Deno.test("64-bit length above 2^53 - 1 is an error marked too large (RFC 6455 §10.4)", () => {
  const result = parseWhole(new Uint8Array([0x82, 0x7f, 0, 0x20, 0, 0, 0, 0, 0, 0]));
  assert.ok(result !== NEED_DATA && "error" in result);
  assert.equal(result.tooLarge, true);
});

Deno.test("RSV bits and opcode are reported as sent (RFC 6455 §5.2)", () => {
  const h = header(parseWhole(new Uint8Array([0x7b, 0x00])));
  assert.equal(h.fin, false);
  assert.equal(h.rsv, 7);
  assert.equal(h.opcode, 0xb);
  assert.equal(header(parseWhole(new Uint8Array([0xc1, 0]))).rsv, 4);
});

Deno.test("parseFrameHeader reads from any view offset (STYLE rule 8)", () => {
  const backing = new Uint8Array([9, 9, 9, 0x81, 0x7e, 0x01, 0x00, 9]);
  const h = header(parseFrameHeader(backing.subarray(3)));
  assert.equal(h.payloadLength, 256);
});

const ALL_LENGTHS = [
  0,
  1,
  125,
  126,
  127,
  65535,
  65536,
  2 ** 32 - 1,
  2 ** 32,
  Number.MAX_SAFE_INTEGER,
];

Deno.test("encodeFrameHeader uses the shortest length form (RFC 6455 §5.2)", () => {
  const sizes = ALL_LENGTHS.map((n) => encodeFrameHeader(Opcode.BINARY, n).length);
  assertSame(sizes, [2, 2, 2, 4, 4, 4, 10, 10, 10, 10]);
});

Deno.test("encodeFrameHeader round-trips through parseFrameHeader (RFC 6455 §5.2)", () => {
  for (const length of ALL_LENGTHS) {
    for (const fin of [true, false]) {
      for (const mask of [undefined, MASK]) {
        for (const opcode of [0, 1, 2, 8, 9, 10]) {
          const bytes = encodeFrameHeader(opcode, length, { fin, mask });
          const h = header(parseWhole(bytes));
          assertSame(h, {
            fin,
            rsv: 0,
            opcode,
            mask: mask ?? null,
            payloadLength: length,
            headerLength: bytes.length,
          });
        }
      }
    }
  }
});

Deno.test("a parsed header re-encodes to the same bytes (RFC 6455 §5.2)", () => {
  checkProperty(
    fc.property(
      fc.integer({ min: 0, max: 15 }),
      fc.boolean(),
      fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.maxSafeNat()),
      fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
      (opcode, fin, length, mask) => {
        const bytes = encodeFrameHeader(opcode, length, { fin, mask });
        const h = header(parseFrameHeader(bytes));
        const again = encodeFrameHeader(h.opcode, h.payloadLength, {
          fin: h.fin,
          mask: h.mask ?? undefined,
        });
        assertSame(again, bytes);
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { examples: [] },
  );
});

Deno.test("encodeFrame merges small frames and returns [header, payload] for large ones", () => {
  const small = new Uint8Array([1, 2, 3]);
  const [one, ...none] = encodeFrame(Opcode.BINARY, small);
  assertSame(none, []);
  assertSame(one, new Uint8Array([0x82, 3, 1, 2, 3]));
  const atLimit = new Uint8Array(MERGE_LIMIT);
  assert.equal(encodeFrame(Opcode.BINARY, atLimit).length, 1);
  const large = new Uint8Array(MERGE_LIMIT + 1);
  const parts = encodeFrame(Opcode.TEXT, large, false);
  assert.equal(parts.length, 2);
  assert.equal(parts[1], large, "the payload is the caller's array, not a copy");
  const h = header(parseFrameHeader(parts[0]));
  assert.equal(h.fin, false);
  assert.equal(h.payloadLength, large.length);
});

Deno.test("encodeFrame output parses back to its opcode and payload (RFC 6455 §5.2)", () => {
  checkProperty(
    fc.property(
      fc.constantFrom(0, 1, 2, 8, 9, 10),
      fc.uint8Array({ maxLength: 300 }),
      fc.boolean(),
      (opcode, payload, fin) => {
        const bytes = concat(encodeFrame(opcode, payload, fin));
        const h = header(parseFrameHeader(bytes));
        assert.equal(h.opcode, opcode);
        assert.equal(h.fin, fin);
        assert.equal(h.mask, null);
        assertSame(bytes.subarray(h.headerLength), payload);
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { examples: [] },
  );
});

/** The obvious masking loop, to compare applyMask with. */
function naiveMask(bytes: Uint8Array, mask: Uint8Array, phase: number): Uint8Array {
  return bytes.map((b, i) => b ^ mask[(phase + i) % 4]);
}

Deno.test("applyMask with the RFC 6455 §5.7 example key unmasks 'Hello'", () => {
  const masked = new Uint8Array([0x7f, 0x9f, 0x4d, 0x51, 0x58]);
  applyMask(masked, new Uint8Array([0x37, 0xfa, 0x21, 0x3d]));
  assert.equal(new TextDecoder().decode(masked), "Hello");
});

Deno.test("applyMask matches a naive XOR on short inputs (byte path) at every phase (RFC 6455 §5.3)", () => {
  for (let n = 0; n < 32; n++) {
    for (let phase = 0; phase < 8; phase++) {
      const data = new Uint8Array(n).map((_, i) => i * 31 + 7);
      const expected = naiveMask(data, MASK, phase);
      applyMask(data, MASK, phase);
      assertSame(data, expected, `n=${n} phase=${phase}`);
    }
  }
});

Deno.test("applyMask matches a naive XOR on long inputs (word path) at every offset and phase (RFC 6455 §5.3)", () => {
  const backing = new Uint8Array(300).map((_, i) => i * 13 + 1);
  for (let offset = 0; offset < 8; offset++) {
    for (const n of [32, 33, 34, 35, 36, 100, 255]) {
      for (let phase = 0; phase < 4; phase++) {
        const copy = backing.slice();
        const view = copy.subarray(offset, offset + n);
        const expected = naiveMask(view, MASK, phase);
        applyMask(view, MASK, phase);
        assertSame(view, expected, `offset=${offset} n=${n} phase=${phase}`);
        // Bytes outside the view are untouched.
        assertSame(copy.subarray(0, offset), backing.subarray(0, offset));
        assertSame(copy.subarray(offset + n), backing.subarray(offset + n));
      }
    }
  }
});

Deno.test("applyMask matches a naive XOR on random data, views and phases (RFC 6455 §5.3)", () => {
  checkProperty(
    fc.property(
      fc.uint8Array({ maxLength: 2000 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.nat({ max: 7 }),
      fc.nat({ max: 100 }),
      (data, mask, offset, phase) => {
        const backing = new Uint8Array(offset + data.length + 3);
        backing.set(data, offset);
        const view = backing.subarray(offset, offset + data.length);
        applyMask(view, mask, phase);
        assertSame(view, naiveMask(data, mask, phase));
        assert.ok(backing.subarray(0, offset).every((b) => b === 0));
        assert.ok(backing.subarray(offset + data.length).every((b) => b === 0));
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { examples: [] },
  );
});

Deno.test("applyMask in pieces equals applyMask in one go when phase counts the bytes done (RFC 6455 §5.3)", () => {
  checkProperty(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 500 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.array(fc.nat({ max: 500 }), { maxLength: 5 }),
      (data, mask, cuts) => {
        const whole = data.slice();
        applyMask(whole, mask);
        const pieces = data.slice();
        const points = [...new Set([0, ...cuts.map((c) => c % data.length), data.length])]
          .sort((a, b) => a - b);
        for (let i = 0; i + 1 < points.length; i++) {
          applyMask(pieces.subarray(points[i], points[i + 1]), mask, points[i]);
        }
        assertSame(pieces, whole);
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { examples: [] },
  );
});

Deno.test("applyMask twice restores the data (RFC 6455 §5.3)", () => {
  checkProperty(
    fc.property(
      fc.uint8Array({ maxLength: 1000 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      (data, mask) => {
        const copy = data.slice();
        applyMask(copy, mask);
        applyMask(copy, mask);
        assertSame(copy, data);
      },
    ),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { examples: [] },
  );
});

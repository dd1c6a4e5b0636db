// encodeTextFrame must produce exactly the bytes of encodeFrame(TEXT, UTF-8 of the text).

import assert from "node:assert/strict";
import {
  encodeFrame,
  encodeTextFrame,
  encodeTextFrameInto,
  Opcode,
  textFrameBound,
  textFrameLength,
} from "../lib/protocol/frame.ts";
import { concat } from "./support/feed.ts";

const LENGTHS = [
  0,
  1,
  61,
  62,
  63,
  64,
  65,
  124,
  125,
  126,
  127,
  255,
  256,
  257,
  5461,
  5462,
  16384,
  70000,
];
const PIECES = ["a", "é", "✓", "😀", "\u007f", "\u0080", "\ud800"];

function sample(length: number, seed: number): string {
  let s = "";
  for (let i = 0; s.length < length; i++) {
    s += seed === 0 ? "q" : PIECES[(i * seed + i) % PIECES.length];
  }
  return s.slice(0, length);
}

Deno.test("encodeTextFrame equals encodeFrame of the UTF-8 payload at every length class (RFC 6455 §5.2, §5.6)", () => {
  const encoder = new TextEncoder();
  for (const length of LENGTHS) {
    for (const seed of [0, 1, 2, 3]) {
      const text = sample(length, seed);
      const expected = concat(encodeFrame(Opcode.TEXT, encoder.encode(text)));
      assert.deepEqual(concat(encodeTextFrame(text)), expected, `length ${length}, seed ${seed}`);
    }
  }
});

Deno.test("textFrameLength is the length of encodeTextFrame's frame at every length class (RFC 6455 §5.2)", () => {
  for (const length of LENGTHS) {
    for (const seed of [0, 1, 2, 3]) {
      const text = sample(length, seed);
      assert.equal(
        textFrameLength(text),
        concat(encodeTextFrame(text)).length,
        `length ${length}, seed ${seed}`,
      );
    }
  }
});

Deno.test("encodeTextFrameInto writes encodeFrame's bytes at an offset and returns their length (RFC 6455 §5.2, §5.6)", () => {
  const encoder = new TextEncoder();
  for (const length of LENGTHS.filter((n) => n <= 5461)) {
    for (const seed of [0, 1, 2, 3]) {
      const text = sample(length, seed);
      const expected = concat(encodeFrame(Opcode.TEXT, encoder.encode(text)));
      const at = 3;
      const out = new Uint8Array(at + textFrameBound(length) + 2).fill(0xee);
      const written = encodeTextFrameInto(text, out, at);
      assert.equal(written, expected.length, `length ${length}, seed ${seed}`);
      assert.deepEqual(out.subarray(at, at + written), expected, `length ${length}, seed ${seed}`);
      assert.deepEqual(
        out.subarray(0, at),
        new Uint8Array(at).fill(0xee),
        "bytes before untouched",
      );
    }
  }
});

// Tests incremental UTF-8 validation (lib/protocol/utf8.ts) against known sequences and against
// `new TextDecoder("utf-8", {fatal: true})` on arbitrary bytes and arbitrary split points, and
// utf8Length against TextEncoder.

import assert from "node:assert/strict";
import fc from "fast-check";
import { checkProperty } from "./support/property.ts";
import { isValidUtf8, utf8Length, Utf8Validator } from "../lib/protocol/utf8.ts";
import { feedings } from "./support/feed.ts";

const strict = new TextDecoder("utf-8", { fatal: true });

function decoderAccepts(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Validates `chunks` in order; true only when all pass and the end is a character boundary. */
function validate(chunks: Uint8Array[]): boolean {
  const v = new Utf8Validator();
  for (const chunk of chunks) if (!v.push(chunk)) return false;
  return v.complete;
}

/** Asserts the verdict for `bytes` is the same whole, byte by byte and split at every point. */
function verdict(bytes: Uint8Array): boolean {
  const [whole, ...rest] = feedings(bytes);
  const expected = validate(whole.chunks);
  for (const f of rest) assert.equal(validate(f.chunks), expected, `fed ${f.name}`);
  assert.equal(isValidUtf8(bytes), expected);
  return expected;
}

const VALID: Record<string, number[]> = {
  "empty": [],
  "ASCII with NUL and DEL": [0x00, 0x41, 0x7f],
  "2-byte minimum U+0080": [0xc2, 0x80],
  "2-byte maximum U+07FF": [0xdf, 0xbf],
  "3-byte minimum U+0800": [0xe0, 0xa0, 0x80],
  "U+D7FF just below the surrogates": [0xed, 0x9f, 0xbf],
  "U+E000 just above the surrogates": [0xee, 0x80, 0x80],
  "U+FFFD": [0xef, 0xbf, 0xbd],
  "U+FFFF noncharacter": [0xef, 0xbf, 0xbf],
  "4-byte minimum U+10000": [0xf0, 0x90, 0x80, 0x80],
  "U+10FFFF maximum": [0xf4, 0x8f, 0xbf, 0xbf],
  "κόσμε": [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5],
};

const INVALID: Record<string, number[]> = {
  "lone continuation byte": [0x80],
  "continuation byte after ASCII": [0x41, 0xbf],
  "overlong 2-byte C0 80 (NUL)": [0xc0, 0x80],
  "overlong 2-byte C1 BF": [0xc1, 0xbf],
  "overlong 3-byte E0 80 80": [0xe0, 0x80, 0x80],
  "overlong 3-byte E0 9F BF": [0xe0, 0x9f, 0xbf],
  "overlong 4-byte F0 80 80 80": [0xf0, 0x80, 0x80, 0x80],
  "overlong 4-byte F0 8F BF BF": [0xf0, 0x8f, 0xbf, 0xbf],
  "high surrogate ED A0 80": [0xed, 0xa0, 0x80],
  "low surrogate ED BF BF": [0xed, 0xbf, 0xbf],
  "surrogate pair ED A0 80 ED B0 80": [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
  "above U+10FFFF: F4 90 80 80": [0xf4, 0x90, 0x80, 0x80],
  "F5 lead byte": [0xf5, 0x80, 0x80, 0x80],
  "FF byte": [0xff],
  "FE byte": [0xfe],
  "truncated 2-byte sequence": [0xc2],
  "truncated 3-byte sequence": [0xe2, 0x82],
  "truncated 4-byte sequence": [0xf0, 0x9f, 0x98],
  "truncated sequence followed by ASCII": [0xe2, 0x82, 0x41],
  "5-byte form F8 88 80 80 80": [0xf8, 0x88, 0x80, 0x80, 0x80],
};

for (const [name, seq] of Object.entries(VALID)) {
  Deno.test(`valid UTF-8 is accepted at every split: ${name} (RFC 3629 §4)`, () => {
    assert.equal(verdict(new Uint8Array(seq)), true);
    assert.equal(decoderAccepts(new Uint8Array(seq)), true, "the reference agrees");
  });
}

for (const [name, seq] of Object.entries(INVALID)) {
  Deno.test(`invalid UTF-8 is rejected at every split: ${name} (RFC 3629 §3)`, () => {
    assert.equal(verdict(new Uint8Array(seq)), false);
    assert.equal(decoderAccepts(new Uint8Array(seq)), false, "the reference agrees");
  });
}

Deno.test("the validator fails at the first bad byte, before the input ends (RFC 6455 §8.1)", () => {
  const v = new Utf8Validator();
  assert.equal(v.push(new Uint8Array([0x61, 0xe0])), true);
  assert.equal(v.complete, false);
  assert.equal(v.push(new Uint8Array([0x80])), false, "E0 80 is overlong: fail at once");
  assert.equal(v.push(new Uint8Array([0x61])), false, "and stays failed");
  assert.equal(v.complete, false);
  v.reset();
  assert.equal(v.push(new Uint8Array([0x61])), true);
  assert.equal(v.complete, true);
});

Deno.test("reset() forgets a sequence left incomplete", () => {
  const v = new Utf8Validator();
  v.push(new Uint8Array([0xf0, 0x9f]));
  v.reset();
  assert.equal(v.push(new Uint8Array([0x41])), true);
  assert.equal(v.complete, true);
});

/** Bytes that are mostly well-formed UTF-8 with occasional damage, so both verdicts occur. */
const nearUtf8 = fc.tuple(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 2 }),
)
  .map(([s, damage]) => {
    const bytes = new TextEncoder().encode(s);
    for (const [at, value] of damage) if (bytes.length) bytes[at % bytes.length] = value;
    return bytes;
  });

const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 64 }), nearUtf8);

/** Cuts `bytes` at the given points (taken modulo its length). */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...at, bytes.length]) {
    chunks.push(bytes.subarray(prev, p));
    prev = p;
  }
  return chunks;
}

Deno.test("the validator agrees with TextDecoder fatal on arbitrary bytes (property)", () => {
  checkProperty(
    fc.property(anyBytes, (bytes) => {
      assert.equal(isValidUtf8(bytes), decoderAccepts(bytes));
    }),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { numRuns: 2000, examples: [] },
  );
});

Deno.test("the validator agrees with TextDecoder fatal at arbitrary split points (property)", () => {
  checkProperty(
    fc.property(anyBytes, fc.array(fc.nat(), { maxLength: 6 }), (bytes, points) => {
      assert.equal(validate(cut(bytes, points)), decoderAccepts(bytes));
    }),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { numRuns: 2000, examples: [] },
  );
});

Deno.test("utf8Length counts what TextEncoder writes: 1 to 4 bytes, U+FFFD for a lone surrogate (RFC 3629 §3)", () => {
  const cases: [string, number][] = [
    ["", 0],
    ["a", 1],
    ["\u007f", 1],
    ["\u0080", 2],
    ["\u07ff", 2],
    ["\u0800", 3],
    ["\uffff", 3],
    ["😀", 4],
    ["\ud800", 3],
    ["\udc00", 3],
    ["\udc00\ud800", 6],
    ["a\ud800", 4],
  ];
  for (const [text, bytes] of cases) {
    assert.equal(utf8Length(text), bytes, JSON.stringify(text));
    assert.equal(new TextEncoder().encode(text).length, bytes, JSON.stringify(text));
  }
});

Deno.test("utf8Length agrees with TextEncoder on arbitrary strings, lone surrogates included (property)", () => {
  const encoder = new TextEncoder();
  checkProperty(
    fc.property(fc.string({ unit: "binary", maxLength: 64 }), (text) => {
      assert.equal(utf8Length(text), encoder.encode(text).length);
    }),
    // Counterexamples fast-check has found go in `examples` (none so far).
    { numRuns: 2000, examples: [] },
  );
});

// Tests splitting the FIFO's byte stream into lines (lib/protocol/lines.ts).

import assert from "node:assert/strict";
import fc from "fast-check";
import { type LineResult, LineSplitter } from "../lib/protocol/lines.ts";
import { bytes, concat, feedAll, feedings } from "./support/feed.ts";

interface Split {
  readonly pushed: LineResult[];
  readonly ended: LineResult[];
}

function run(chunks: Uint8Array[], max: number): Split {
  const splitter = new LineSplitter(max);
  const pushed: LineResult[] = [];
  for (const chunk of chunks) pushed.push(...splitter.push(chunk));
  return { pushed, ended: splitter.end() };
}

/**
 * Splits `input` (which ends with a newline) in every feeding. The trailing data is a final
 * line without a newline: push() must not return it, end() must.
 */
function split(input: Uint8Array | string, max = 1024): Split {
  const data = typeof input === "string" ? bytes(input) : input;
  return feedAll(data, (chunks) => run(chunks, max), {
    trailing: bytes("tail"),
    check(withTrailing, whole) {
      assert.deepStrictEqual(withTrailing, { pushed: whole.pushed, ended: [{ line: "tail" }] });
    },
  });
}

function lines(...texts: string[]): LineResult[] {
  return texts.map((line) => ({ line }));
}

Deno.test("LineSplitter splits on LF at every split point", () => {
  const result = split("one\ntwo\nthree\n");
  assert.deepStrictEqual(result, { pushed: lines("one", "two", "three"), ended: [] });
});

Deno.test("LineSplitter removes one CR before LF", () => {
  assert.deepStrictEqual(split("one\r\ntwo\r\r\nthree\n").pushed, lines("one", "two\r", "three"));
});

Deno.test("LineSplitter skips empty lines, including a lone CR", () => {
  assert.deepStrictEqual(split("\n\na\n\r\n\nb\n").pushed, lines("a", "b"));
});

Deno.test("LineSplitter keeps multi-byte characters split across chunks", () => {
  assert.deepStrictEqual(split("κόσμε 😀\n€\n").pushed, lines("κόσμε 😀", "€"));
});

Deno.test("end() returns a final line without a newline, in any pieces", () => {
  for (const f of feedings(bytes("a\nlast line"))) {
    assert.deepStrictEqual(
      run(f.chunks, 100),
      { pushed: lines("a"), ended: lines("last line") },
      f.name,
    );
  }
});

Deno.test("end() with nothing held returns nothing", () => {
  assert.deepStrictEqual(new LineSplitter(10).end(), []);
  const s = new LineSplitter(10);
  s.push(bytes("a\n"));
  assert.deepStrictEqual(s.end(), []);
});

Deno.test("a line of exactly the limit passes, with or without CR", () => {
  assert.deepStrictEqual(split("12345\n12345\r\n", 5).pushed, lines("12345", "12345"));
});

Deno.test("an oversize line is dropped with an error and later lines still come out", () => {
  const result = split("ok\n123456\nafter\n", 5);
  assert.equal(result.pushed.length, 3);
  assert.deepStrictEqual(result.pushed[0], { line: "ok" });
  assert.ok("error" in result.pushed[1]);
  assert.match((result.pushed[1] as { error: string }).error, /over the limit of 5/);
  assert.deepStrictEqual(result.pushed[2], { line: "after" });
});

Deno.test("an oversize line ending in CR LF reports the same error at every split point", () => {
  const result = split("aaaaaaaaaa\r\nb\n", 5);
  assert.deepStrictEqual(result.pushed[1], { line: "b" });
  assert.ok("error" in result.pushed[0]);
});

Deno.test("an oversize line spanning many chunks is dropped without being held", () => {
  const splitter = new LineSplitter(1000);
  const chunk = new Uint8Array(4096).fill(0x61);
  for (let i = 0; i < 256; i++) assert.deepStrictEqual(splitter.push(chunk), []);
  const out = splitter.push(bytes("aa\nnext\n"));
  assert.equal(out.length, 2);
  assert.ok("error" in out[0]);
  assert.match((out[0] as { error: string }).error, /line of 1048578 bytes/);
  assert.deepStrictEqual(out[1], { line: "next" });
});

Deno.test("an oversize final line without a newline is reported by end()", () => {
  const splitter = new LineSplitter(3);
  splitter.push(bytes("abcdef"));
  const out = splitter.end();
  assert.equal(out.length, 1);
  assert.ok("error" in out[0]);
});

Deno.test("a line that is not valid UTF-8 is dropped with an error and later lines still come out", () => {
  const input = concat([bytes("a\n"), new Uint8Array([0x62, 0xc0, 0x80, 0x0a]), bytes("c\n")]);
  const result = split(input);
  assert.equal(result.pushed.length, 3);
  assert.ok("error" in result.pushed[1]);
  assert.match((result.pushed[1] as { error: string }).error, /not valid UTF-8/);
  assert.deepStrictEqual([result.pushed[0], result.pushed[2]], lines("a", "c"));
});

Deno.test("a line starting with U+FEFF keeps it, byte for byte, at every split point", () => {
  const input = concat([new Uint8Array([0xef, 0xbb, 0xbf]), bytes("hi\n\uFEFF\uFEFFtwo\n")]);
  assert.deepStrictEqual(split(input).pushed, lines("\uFEFFhi", "\uFEFF\uFEFFtwo"));
});

Deno.test("a line that is only U+FEFF is a line, not an empty one", () => {
  assert.deepStrictEqual(split("\uFEFF\n").pushed, lines("\uFEFF"));
});

Deno.test("push() does not keep the caller's chunk", () => {
  const splitter = new LineSplitter(100);
  const chunk = bytes("held");
  splitter.push(chunk);
  chunk.fill(0x7a);
  assert.deepStrictEqual(splitter.push(bytes("!\n")), lines("held!"));
});

/** Decodes as a push server must: text is data, so a leading U+FEFF stays. */
const textDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

Deno.test("any lines cut at any points come out as TextDecoder decodes them, BOM kept (property)", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.boolean(), fc.string({ unit: "binary", maxLength: 12 }))
          .map(([bom, s]) => (bom ? "\uFEFF" : "") + s.replaceAll("\n", "")),
        { maxLength: 8 },
      ),
      fc.boolean(),
      fc.array(fc.nat(), { maxLength: 6 }),
      (texts, crlf, cuts) => {
        const input = bytes(texts.map((t) => t + (crlf ? "\r\n" : "\n")).join(""));
        const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        const bounds = [0, ...points, input.length];
        const chunks = bounds.slice(1).map((end, i) => input.slice(bounds[i], end));
        const expected = texts
          .map((t) => textDecoder.decode(bytes(t)))
          .map((t) => (!crlf && t.endsWith("\r") ? t.slice(0, -1) : t))
          .filter((t) => t !== "");
        assert.deepStrictEqual(run(chunks, 1000), { pushed: lines(...expected), ended: [] });
      },
    ),
    { numRuns: 500 },
  );
});

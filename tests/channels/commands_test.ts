// Tests the FIFO line rule (lib/channels/commands.ts): commands, plain lines, dropped lines.

import assert from "node:assert/strict";
import fc from "fast-check";
import { classifyLine } from "../../lib/channels/commands.ts";

Deno.test("a channel command publishes its data as JSON text", () => {
  assert.deepStrictEqual(classifyLine('{"channel":"news","data":{"title":"Hi"}}'), {
    kind: "publish",
    channel: "news",
    data: '{"title":"Hi"}',
  });
  assert.deepStrictEqual(classifyLine('  {"channel":"n","data":null}'), {
    kind: "publish",
    channel: "n",
    data: "null",
  });
});

Deno.test("a user command sends to a user; numeric ids become text", () => {
  assert.deepStrictEqual(classifyLine('{"user":"42","data":[1]}'), {
    kind: "user",
    user: "42",
    data: "[1]",
  });
  assert.deepStrictEqual(classifyLine('{"user":42,"data":"x"}'), {
    kind: "user",
    user: "42",
    data: '"x"',
  });
});

Deno.test("disconnect takes a user id or {user}", () => {
  assert.deepStrictEqual(classifyLine('{"disconnect":"42"}'), { kind: "disconnect", user: "42" });
  assert.deepStrictEqual(classifyLine('{"disconnect":{"user":7}}'), {
    kind: "disconnect",
    user: "7",
  });
});

Deno.test("plain lines, non-object JSON and objects without a command key are broadcast", () => {
  for (const line of ["hello", "[1,2]", "42", '"s"', '{"type":"chat","text":"hi"}', "x {"]) {
    assert.deepStrictEqual(classifyLine(line), { kind: "broadcast", text: line }, line);
  }
});

Deno.test("a line starting with { that is not JSON is dropped, never broadcast", () => {
  for (const line of ['{"channel":"news","data":{"ti', "{", "{oops}", ' {"a":1']) {
    assert.equal(classifyLine(line).kind, "dropped", line);
  }
});

Deno.test("a command that breaks its shape is dropped with a reason", () => {
  const bad = [
    '{"channel":"news"}',
    '{"channel":"bad name","data":1}',
    '{"channel":5,"data":1}',
    '{"user":"","data":1}',
    '{"user":"42"}',
    '{"disconnect":""}',
    '{"disconnect":{"id":"42"}}',
    '{"channel":"a","user":"b","data":1}',
  ];
  for (const line of bad) {
    const result = classifyLine(line);
    assert.equal(result.kind, "dropped", line);
    assert.ok(result.kind === "dropped" && result.reason.length > 0);
  }
});

Deno.test("every truncation of a command line is dropped or broadcast as the same whole text", () => {
  const line = '{"channel":"news","data":{"title":"Release 2.0","n":[1,2,3]}}';
  for (let i = 1; i < line.length; i++) {
    assert.equal(classifyLine(line.slice(0, i)).kind, "dropped", line.slice(0, i));
  }
});

Deno.test("classifyLine never throws on any string", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.string().map((s) => `{${s}`)), (line) => {
      classifyLine(line);
    }),
  );
});

// Tests the log helpers (lib/api/log.ts): describeError's message plus the handler's frame.

import assert from "node:assert/strict";
import { describeError, errorMessage } from "../lib/api/log.ts";

const LIB = new URL("../lib/", import.meta.url).href;
const HERE = new URL(import.meta.url).pathname;

Deno.test("describeError gives the message and the first frame outside lib/", () => {
  const e = new TypeError("x is undefined");
  e.stack = [
    "TypeError: x is undefined",
    `    at Connection.send (${LIB}server/connection.ts:120:11)`,
    `    at ${LIB}server/server.ts:88:5`,
    "    at text (file:///srv/app/handlers.ts:12:7)",
    "    at file:///srv/app/other.ts:3:1",
  ].join("\n");
  assert.equal(describeError(e), "TypeError: x is undefined (at /srv/app/handlers.ts:12:7)");
});

Deno.test("describeError finds the frame of a real throw in this file", () => {
  function handler(): never {
    throw new Error("boom");
  }
  let caught: unknown;
  try {
    handler();
  } catch (e) {
    caught = e;
  }
  const line = /\(at (.*):(\d+):(\d+)\)$/.exec(describeError(caught));
  assert.ok(line, describeError(caught));
  assert.equal(line[1], HERE);
  // The reported line of this file holds the throw statement.
  const source = Deno.readTextFileSync(HERE).split("\n");
  assert.match(source[Number(line[2]) - 1], /throw new Error\("boom"\)/);
  assert.ok(describeError(caught).startsWith("boom (at "));
});

Deno.test("describeError keeps a stack with only lib/ frames to the message", () => {
  const e = new Error("inside");
  e.stack = `Error: inside\n    at f (${LIB}server/server.ts:1:2)\n    at ext:core/01_core.js:5:5`;
  assert.equal(describeError(e), "inside");
});

Deno.test("describeError handles values that are not errors, and multi-line messages", () => {
  assert.equal(describeError("plain string"), "plain string");
  assert.equal(describeError(42), "42");
  assert.equal(describeError(undefined), "undefined");
  const e = new RangeError("first\nsecond");
  e.stack = "RangeError: first\nsecond\n    at h (file:///a%20b/h.ts:1:9)";
  assert.equal(describeError(e), "RangeError: first | second (at /a b/h.ts:1:9)");
});

Deno.test("errorMessage keeps the name of a non-plain Error and drops 'Error: '", () => {
  assert.equal(errorMessage(new Error("m")), "m");
  assert.equal(errorMessage(new TypeError("m")), "TypeError: m");
});

// Tests push.v1 operations and messages (lib/channels/protocol.ts).

import assert from "node:assert/strict";
import fc from "fast-check";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";
import {
  binaryFrameError,
  encodeError,
  encodePong,
  encodePublication,
  encodeSubscribed,
  encodeUnsubscribed,
  encodeUserMessage,
  parseOperation,
} from "../../lib/channels/protocol.ts";

Deno.test("subscribe takes channels with an optional {epoch, offset} each", () => {
  const result = parseOperation(
    '{"op":"subscribe","id":1,"channels":{"news":{"epoch":"e1","offset":12},"user:42":{}}}',
  );
  assert.deepStrictEqual(result, {
    ok: true,
    operation: {
      op: "subscribe",
      id: 1,
      channels: [
        { channel: "news", since: { epoch: "e1", offset: 12 } },
        { channel: "user:42", since: null },
      ],
    },
  });
});

Deno.test("unsubscribe, ping, auth and presence parse", () => {
  assert.deepStrictEqual(parseOperation('{"op":"unsubscribe","id":"a","channels":["news"]}'), {
    ok: true,
    operation: { op: "unsubscribe", id: "a", channels: ["news"] },
  });
  assert.deepStrictEqual(parseOperation('{"op":"ping"}'), {
    ok: true,
    operation: { op: "ping", id: undefined },
  });
  assert.deepStrictEqual(parseOperation('{"op":"auth","token":"t"}'), {
    ok: true,
    operation: { op: "auth", id: undefined, token: "t" },
  });
  assert.deepStrictEqual(parseOperation('{"op":"presence","id":2,"channel":"news"}'), {
    ok: true,
    operation: { op: "presence", id: 2, channel: "news" },
  });
});

Deno.test("malformed operations are errors with code 4002 and the id when it could be read", () => {
  const cases: [string, string, number | string | undefined][] = [
    ["not json", "not-json", undefined],
    ["[]", "not-operation", undefined],
    ['{"op":1}', "not-operation", undefined],
    ['{"op":"x","id":3}', "unknown-op", 3],
    ['{"op":"ping","id":1.5}', "bad-id", undefined],
    ['{"op":"ping","id":"' + "x".repeat(65) + '"}', "bad-id", undefined],
    ['{"op":"subscribe","id":4}', "bad-field", 4],
    ['{"op":"subscribe","id":4,"channels":{}}', "bad-field", 4],
    ['{"op":"subscribe","id":5,"channels":{"a b":{}}}', "bad-channel", 5],
    ['{"op":"subscribe","channels":{"a":{"epoch":"e"}}}', "bad-field", undefined],
    ['{"op":"subscribe","channels":{"a":{"epoch":"e","offset":-1}}}', "bad-field", undefined],
    ['{"op":"subscribe","channels":{"a":{"epoch":1,"offset":1}}}', "bad-field", undefined],
    ['{"op":"subscribe","channels":{"a":5}}', "bad-field", undefined],
    ['{"op":"unsubscribe","id":"u","channels":"news"}', "bad-field", "u"],
    ['{"op":"unsubscribe","channels":[""]}', "bad-channel", undefined],
    ['{"op":"auth","token":""}', "bad-field", undefined],
    ['{"op":"presence","channel":"é"}', "bad-channel", undefined],
  ];
  for (const [text, kind, id] of cases) {
    const result = parseOperation(text);
    assert.ok(!result.ok, text);
    assert.equal(result.error.kind, kind, text);
    assert.equal(result.error.code, PushCloseCode.BAD_REQUEST, text);
    assert.equal(result.error.id, id, text);
  }
  assert.equal(binaryFrameError().code, PushCloseCode.BAD_REQUEST);
});

Deno.test("parseOperation never throws, whatever the input", () => {
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  assert.equal(parseOperation(deep).ok, false);
  // "__proto__" is a valid name: JSON.parse makes it an own key, not the prototype.
  assert.deepStrictEqual(parseOperation('{"op":"subscribe","channels":{"__proto__":{}}}'), {
    ok: true,
    operation: {
      op: "subscribe",
      id: undefined,
      channels: [{ channel: "__proto__", since: null }],
    },
  });
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.json(),
        fc.record({
          op: fc.constantFrom("subscribe", "unsubscribe", "ping", "auth", "presence"),
          id: fc.jsonValue(),
          channels: fc.jsonValue(),
          token: fc.jsonValue(),
          channel: fc.jsonValue(),
        }, { requiredKeys: ["op"] }).map((o) => JSON.stringify(o)),
      ),
      (text) => {
        const result = parseOperation(text);
        assert.equal(typeof result.ok, "boolean");
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("server messages are JSON with the documented fields", () => {
  assert.deepStrictEqual(
    JSON.parse(
      encodeSubscribed({ id: 1, channel: "news", recovered: true, epoch: "e", offset: 3 }),
    ),
    { type: "subscribed", id: 1, channel: "news", recovered: true, epoch: "e", offset: 3 },
  );
  assert.deepStrictEqual(JSON.parse(encodeUnsubscribed({ channel: "news" })), {
    type: "unsubscribed",
    channel: "news",
  });
  assert.deepStrictEqual(
    JSON.parse(encodePublication({ channel: "user:42", offset: 7, data: '{"a":[1,"\\n"]}' })),
    ["user:42", 7, { a: [1, "\n"] }],
    "a publication is the array [channel, offset, data]",
  );
  assert.deepStrictEqual(
    JSON.parse(encodeError({ code: 4005, reason: 'no "x"', id: "q", channel: "c" })),
    { type: "error", id: "q", code: 4005, reason: 'no "x"', channel: "c" },
  );
  assert.deepStrictEqual(JSON.parse(encodeUserMessage('{"a":1}')), {
    type: "message",
    data: { a: 1 },
  });
  assert.deepStrictEqual(JSON.parse(encodePong()), { type: "pong" });
  assert.deepStrictEqual(JSON.parse(encodePong(9)), { type: "pong", id: 9 });
});

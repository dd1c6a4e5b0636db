// End to end through the real server: clients that flood malformed push.v1 operations get an
// `error` 4002 for each, are closed with 4002 at the documented count (DEFAULT_MAX_ERRORS,
// lib/channels/PROTOCOL.md "Error and close codes"), and the server keeps serving everyone else.

import assert from "node:assert/strict";
import { DEFAULT_MAX_ERRORS } from "../../lib/server/channel_hub.ts";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";
import { numbers, PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const FLOODERS = 20;
/** Operations each flooder sends, far more than the server accepts before closing. */
const OPS_PER_FLOODER = 500;

/** Malformed operations of every kind the protocol names, and some hostile shapes. */
const MALFORMED: (string | Uint8Array)[] = [
  "not json",
  "{",
  "[]",
  "null",
  '{"no":"op"}',
  '{"op":"fly"}',
  '{"op":"subscribe"}',
  '{"op":"subscribe","channels":[]}',
  '{"op":"subscribe","channels":{"bad name":{}}}',
  '{"op":"subscribe","channels":{"news":{"epoch":1,"offset":"x"}}}',
  `{"op":"ping","id":"${"i".repeat(100)}"}`,
  '{"op":"unsubscribe","channels":"news"}',
  "[".repeat(2000),
  `{"op":"subscribe","channels":{"${"c".repeat(200)}":{}}}`,
  '{"op":"presence","channel":"news"}',
  new Uint8Array([0xff, 0xfe, 0x00]),
];

function line(n: number): string {
  return JSON.stringify({ channel: "news", data: { n } }) + "\n";
}

Deno.test("a flood of malformed operations: 4002 errors, a 4002 close at the documented count, others served", async () => {
  const server = await RestartableServer.create();
  try {
    const bystander = await PushV1Client.open(server.port);
    assert.equal((await bystander.subscribe("news")).type, "subscribed");

    const flooders = await Promise.all(
      Array.from({ length: FLOODERS }, () => PushV1Client.open(server.port)),
    );
    for (const flooder of flooders) {
      for (let i = 0; i < OPS_PER_FLOODER; i++) flooder.send(MALFORMED[i % MALFORMED.length]);
    }
    assert.ok(await tryWriteFifo(server.fifo, line(1)));

    for (const flooder of flooders) {
      const closed = await flooder.closed;
      assert.deepStrictEqual(closed, {
        code: PushCloseCode.BAD_REQUEST,
        reason: "too many malformed operations",
      });
      const errors = flooder.received.filter((m) => m.type === "error");
      assert.equal(errors.length, DEFAULT_MAX_ERRORS, "one error per operation until the close");
      assert.ok(errors.every((e) => e.code === PushCloseCode.BAD_REQUEST));
      assert.ok(
        flooder.received.every((m) => m.type === "error" || m.type === "publication"),
        `only errors: ${JSON.stringify(flooder.received.filter((m) => m.type !== "error"))}`,
      );
    }

    // The server still serves: the bystander got the line, and new clients work.
    while (numbers(bystander.received).length < 1) await bystander.next();
    assert.ok(await tryWriteFifo(server.fifo, line(2)));
    const newcomer = await PushV1Client.open(server.port);
    const sub = await newcomer.subscribe("news", {
      epoch: bystander.received[0].epoch as string,
      offset: 0,
    });
    assert.equal(sub.recovered, true);
    while (numbers(bystander.received).length < 2) await bystander.next();
    assert.deepStrictEqual(numbers(bystander.received), [1, 2]);
    while (numbers(newcomer.received).length < 2) await newcomer.next();
    assert.deepStrictEqual(numbers(newcomer.received), [1, 2]);
    bystander.close();
    newcomer.close();
  } finally {
    await server.stop();
  }
});

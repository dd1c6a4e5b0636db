// End to end through the real server: a channel that the handlers file's `subscribe` hook refuses
// gets the protocol's `error` with code 4005 (FORBIDDEN) for that channel, receives nothing from
// it, and the connection stays usable (lib/channels/PROTOCOL.md, "Error and close codes").

import assert from "node:assert/strict";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";
import { PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const HANDLERS = new URL("../fixtures/secret_channel_handlers.ts", import.meta.url).pathname;

Deno.test("a channel the subscribe hook refuses gets error 4005; the connection stays usable", async () => {
  const server = await RestartableServer.create([HANDLERS]);
  try {
    const client = await PushV1Client.open(server.port);
    client.send({ op: "subscribe", id: 7, channels: { secret: {}, news: {} } });
    const replies = [await client.next(), await client.next()];
    const refused = replies.find((m) => m.type === "error");
    assert.deepStrictEqual(refused, {
      type: "error",
      id: 7,
      code: PushCloseCode.FORBIDDEN,
      reason: "subscription refused",
      channel: "secret",
    });
    assert.equal(PushCloseCode.FORBIDDEN, 4005);
    const allowed = replies.find((m) => m.type === "subscribed");
    assert.deepStrictEqual([allowed?.channel, allowed?.id], ["news", 7]);

    // Still usable: it answers a ping, and gets news but never secret.
    assert.deepStrictEqual(await client.flush(), []);
    const lines = [
      { channel: "secret", data: { n: 1 } },
      { channel: "news", data: { n: 2 } },
    ].map((l) => JSON.stringify(l) + "\n").join("");
    assert.ok(await tryWriteFifo(server.fifo, lines));
    const publication = await client.next();
    assert.deepStrictEqual(
      [publication.type, publication.channel, publication.data],
      ["publication", "news", { n: 2 }],
    );
    assert.deepStrictEqual(await client.flush(), []);

    // A later subscription on the same connection still works.
    const later = await client.subscribe("other");
    assert.deepStrictEqual([later.type, later.channel], ["subscribed", "other"]);
    client.close();
  } finally {
    await server.stop();
  }
});
